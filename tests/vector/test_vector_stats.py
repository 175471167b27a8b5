"""`venv.stats()` on every backend, and `make_vec(..., metrics=True)` scraped over `rock_envs.serve_metrics`."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import rock_envs
from tests.support.envs import CARTPOLE, NORMAL, RAISE, SLOW
from tests.support.processes import kill_worker


def test_stats_count_steps_resets_errors_timeouts_and_restarts(make, probe, backend) -> None:  # type: ignore[no-untyped-def]
    venv = make(probe, 4, delay=30.0)
    assert venv.stats().steps == 0 and venv.stats().workers[0].step_p50_ms is None
    venv.reset(seed=0)
    for _ in range(5):
        venv.step([NORMAL] * 4)
    venv.step([NORMAL, RAISE, NORMAL, NORMAL])  # env 1's step raises: its info carries the error
    stats = venv.stats()
    assert (stats.steps, stats.resets, stats.env_errors, stats.timeouts, stats.restarts) == (24, 4, 1, 0, 0)
    assert stats.steps_per_second > 0
    assert [(w.worker, w.envs, w.steps) for w in stats.workers] == [(0, 2, 12), (1, 2, 12)]
    for w in stats.workers:
        assert w.step_p50_ms is not None and w.step_p99_ms is not None
        assert 0 < w.step_p50_ms <= w.step_p99_ms
    if backend.name != "local":  # the local backend steps inside step_async: nothing to time out
        # env 3 sleeps 30 s: past the 1 s timeout (the last worker: worker 0 may be the caller itself)
        venv.step_async([NORMAL, NORMAL, NORMAL, SLOW])
        with pytest.raises(rock_envs.WorkerTimeoutError):
            venv.step_wait(timeout=1.0)
        stats = venv.stats()
        assert stats.timeouts == 1 and [w.restarts for w in stats.workers] == [0, 1]


def test_a_killed_worker_counts_as_a_restart(make, probe, process_backend) -> None:  # type: ignore[no-untyped-def]
    venv = make(probe, 4)
    venv.reset(seed=0)
    kill_worker(venv, 1)
    venv.step([NORMAL] * 4)
    stats = venv.stats()
    assert [w.restarts for w in stats.workers] == [0, 1]
    assert stats.restarts == 1


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def find(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> list[float]:
    return [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]


def test_metrics_true_shows_the_vector_env_to_prometheus_until_closed() -> None:
    port = rock_envs.serve_metrics(0)
    assert rock_envs.serve_metrics(port) == port  # serving it again is a no-op
    venv = rock_envs.make_vec(CARTPOLE, 4, backend="subprocess", num_workers=2, metrics=True)
    plain = rock_envs.make_vec(CARTPOLE, 2, backend="local", num_workers=1)  # no metrics: never exported
    try:
        venv.reset(seed=0)
        plain.reset(seed=0)
        for _ in range(11):
            venv.step(venv.action_space.sample())
        s = scrape(port)
        assert find(s, "rock_envs_vector_steps_total", env=CARTPOLE) == [44.0]
        assert find(s, "rock_envs_vector_resets_total", env=CARTPOLE) == [4.0]
        assert find(s, "rock_envs_vector_steps_per_second", env=CARTPOLE)[0] > 0
        assert sorted(find(s, "rock_envs_vector_worker_envs", env=CARTPOLE)) == [2.0, 2.0]
        p50 = find(s, "rock_envs_vector_step_latency_seconds", env=CARTPOLE, quantile="0.5")
        assert len(p50) == 2 and all(v > 0 for v in p50)
        assert len({dict(ls)["venv"] for (n, ls) in s if n == "rock_envs_vector_steps_total"}) == 1
    finally:
        venv.close()
        plain.close()
    assert not find(scrape(port), "rock_envs_vector_steps_total", env=CARTPOLE)
