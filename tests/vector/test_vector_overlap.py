"""Envs that wait, stepped at once inside a worker: `worker_threads=K` for blocking envs, the worker's
asyncio loop for envs with `async def step/reset`. Same results as one after another, in order."""

from __future__ import annotations

import re

import numpy as np
import pytest

import rock_envs
from tests.support.envs import NORMAL, RAISE, SLOW, AsyncProbeEnv, AsyncWaitEnv, DrawTextEnv, WaitEnv

ACTIONS = np.random.default_rng(7).integers(0, 2, size=(14, 6))


@pytest.fixture
def wait_ids(runtime_ids: None) -> tuple[str, str]:
    rock_envs.register("test:Wait-v0", entry_point=WaitEnv, override=True)
    rock_envs.register("test:AsyncWait-v0", entry_point=AsyncWaitEnv, override=True)
    return "test:Wait-v0", "test:AsyncWait-v0"


def _trajectory(venv, steps: int = len(ACTIONS)) -> list[tuple]:
    obs, infos = venv.reset(seed=3)
    out = [(obs.copy(), None, None, None)]
    for actions in ACTIONS[:steps]:
        obs, rewards, terms, truncs, infos = venv.step(actions)
        out.append((obs.copy(), rewards.copy(), terms.copy(), truncs.copy()))
    return out


def _same(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for row_a, row_b in zip(a, b):
        for x, y in zip(row_a, row_b):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("autoreset_mode", ["next_step", "same_step"])
def test_threads_and_async_envs_give_the_sequential_trajectories_in_order(make, wait_ids, autoreset_mode):
    blocking, awaited = wait_ids
    sequential = _trajectory(make(blocking, 6, autoreset_mode=autoreset_mode))
    threaded = _trajectory(make(blocking, 6, worker_threads=3, autoreset_mode=autoreset_mode))
    asynchronous = _trajectory(make(awaited, 6, autoreset_mode=autoreset_mode))
    _same(sequential, threaded)
    _same(sequential, asynchronous)
    assert any(row[2].any() for row in sequential[1:])  # episodes ended: autoreset ran in the overlapped path


def test_text_envs_on_threads_keep_their_own_random(make):
    """Text (GEM-like) envs draw from Python's global `random`; envs drawing at once on threads each
    draw from their own generator, so they give the sequential draws. (An env must be thread-safe
    itself: GEM's Sokoban room generator keeps module globals, so it is not.)"""

    def run(**kwargs):
        venv = make(DrawTextEnv, 4, num_workers=1, **kwargs)
        seen = [venv.reset(seed=11)[0]]
        seen += [venv.step(["a", "b", "c", "d"])[0] for _ in range(4)]
        return seen

    assert run(worker_threads=4) == run()


@pytest.mark.parametrize("kind", ["threads", "async"])
def test_recv_returns_the_envs_of_a_worker_as_they_finish(make, probe, kind):
    """One worker, four envs: env 0 waits, and the three after it come back without it."""
    if kind == "threads":
        venv = make(probe, 4, num_workers=1, worker_threads=4, batch_size=3, delay=2.0)
    else:
        venv = make(AsyncProbeEnv, 4, num_workers=1, batch_size=3)
        venv.set_attr("delay", 2.0)
    venv.async_reset(seed=0)
    first, *_ = venv.recv()
    rest, *_ = venv.recv()
    assert sorted([*first, *rest]) == [0, 1, 2, 3]
    venv.send(np.array([SLOW, NORMAL, NORMAL, NORMAL]))
    ids, obs, *_ = venv.recv()
    assert sorted(ids) == [1, 2, 3]
    ids, obs, rewards, terms, truncs, infos = venv.recv()
    assert list(ids) == [0] and obs[0][0] == 1.0


def test_a_specs_worker_threads_is_the_default(make, probe):
    """An env registered with `worker_threads=` (as code:RockTasks-v0 is) is stepped at once unasked."""
    rock_envs.register(
        "test:ThreadedProbe-v0", entry_point=rock_envs.spec(probe).entry_point, worker_threads=4, override=True
    )
    venv = make("test:ThreadedProbe-v0", 4, num_workers=1, batch_size=3, delay=2.0)
    venv.reset(seed=0)
    venv.send(np.array([SLOW, NORMAL, NORMAL, NORMAL]))
    assert sorted(venv.recv()[0]) == [1, 2, 3]
    assert list(venv.recv()[0]) == [0]
    assert rock_envs.spec("code:RockTasks-v0").worker_threads == 16


def test_an_env_raising_on_a_thread_reports_it_and_the_others_go_on(make, probe):
    venv = make(probe, 4, worker_threads=2)
    venv.reset(seed=0)
    obs, rewards, terms, truncs, infos = venv.step(np.array([NORMAL, RAISE, NORMAL, NORMAL]))
    assert list(truncs) == [False, True, False, False]
    assert infos["error"]["message"][1] == "boom in step"
    assert list(obs[:, 0]) == [1.0, 0.0, 1.0, 1.0]


def test_on_error_raise_on_a_thread_raises_the_env_error(make, probe):
    venv = make(probe, 4, worker_threads=2, on_error="raise")
    venv.reset(seed=0)
    with pytest.raises(rock_envs.RemoteError, match="boom in step"):
        venv.step(np.array([NORMAL, RAISE, NORMAL, NORMAL]))


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_worker_threads_must_be_a_positive_int(bad):
    with pytest.raises(rock_envs.EnvArgumentError, match=re.escape(f"got {bad!r}; pass e.g. worker_threads=32")):
        rock_envs.make_vec("CartPole-v1", 2, backend="local", worker_threads=bad)
