"""Trajectory records: written on subprocess workers in every autoreset mode, replayed identically on
every backend; `rock_envs.replay(record, until_step=k)`; `rock-envs replay` finds the first step a
non-deterministic env differs at."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

import rock_envs
from rock_envs.core.trajectory import from_json, obs_hash, read_episode
from rock_envs.trajectories import episodes_in, verify
from tests.support.backends import Backend
from tests.support.envs import CARTPOLE, MOVES, SOKOBAN
from tests.support.paths import PYTHON, ROOT

NOISY = "test:Noisy-v0"
CATALOG = f'[[env]]\nid = "{NOISY}"\nentry_point = "tests.support.envs:NoisyEnv"\nkwargs = {{ noisy_from = 4 }}\n'


def _run(venv: Any, env_id: str, steps: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    venv.reset(seed=seed)
    for _ in range(steps):
        if env_id == SOKOBAN:
            actions = [MOVES[rng.randrange(4)] for _ in range(venv.num_envs)]
        else:
            actions = [rng.randrange(2) for _ in range(venv.num_envs)]
        obs, rewards, terms, truncs, infos = venv.step(actions)
        assert "episode_start" not in infos  # recording changes nothing the caller sees
        if venv.autoreset_mode.name == "DISABLED" and (terms | truncs).any():
            venv.reset(options={"reset_mask": terms | truncs})


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Records made on the subprocess backend: Sokoban (next_step) and CartPole in each autoreset mode
    (its episodes after the first are unseeded resets: they start from the generator state)."""
    out = {}
    for env_id, mode in [
        (SOKOBAN, "next_step"),
        (CARTPOLE, "next_step"),
        (CARTPOLE, "same_step"),
        (CARTPOLE, "disabled"),
    ]:
        path = tmp_path_factory.mktemp(f"{env_id.replace(':', '-')}-{mode}")
        with rock_envs.make_vec(env_id, 3, backend="subprocess", num_workers=2, record=path, autoreset_mode=mode) as v:
            _run(v, env_id, 50)
        out[f"{env_id}/{mode}"] = path
    yield out


def test_a_record_is_json_lines_of_every_step(recorded):
    episodes = list(episodes_in(recorded[f"{CARTPOLE}/next_step"]))
    assert len(episodes) > 3  # CartPole episodes end within 50 random steps: autoresets were recorded
    first = min(episodes, key=lambda e: (e.header["index"], e.header["episode"]))
    assert first.header["seed"] == 0 and first.header["env_id"] == CARTPOLE and first.header["kwargs"] == {}
    later = [e for e in episodes if e.header["episode"] > 0]
    assert later and all(e.header["seed"] is None and e.header["rng"]["bit_generator"] == "PCG64" for e in later)
    lines = [json.loads(line) for line in open(first.path)]
    assert [line["kind"] for line in lines[:2]] == ["episode", "reset"]
    assert lines[-1]["kind"] == "end" and lines[-1]["reason"] in ("terminated", "truncated", "closed")
    step = lines[2]
    assert set(step) == {"kind", "t", "action", "reward", "terminated", "truncated", "obs"} and step["t"] == 1
    assert step["action"] in (0, 1) and step["reward"] == 1.0
    sokoban = list(episodes_in(recorded[f"{SOKOBAN}/next_step"]))
    assert all(isinstance(e.header["seed"], int) for e in sokoban)  # GEM: unseeded resets have derived seeds
    assert all(s["action"] in MOVES for e in sokoban for s in e.steps)


@pytest.mark.parametrize("mode", ["next_step", "same_step", "disabled"])
def test_records_of_every_autoreset_mode_replay_identically(recorded, mode):
    with rock_envs.make(CARTPOLE) as env:
        reports = [verify(e, env=env) for e in episodes_in(recorded[f"{CARTPOLE}/{mode}"])]
    assert reports and all(r.identical for r in reports), [str(r) for r in reports if not r.identical]


def test_records_made_on_subprocess_replay_identically_on(backend: Backend, recorded):
    for key in (f"{SOKOBAN}/next_step", f"{CARTPOLE}/same_step"):
        episodes = list(episodes_in(recorded[key]))
        with rock_envs.make(episodes[0].env_id, backend=backend.name, **backend.kwargs) as env:
            reports = [verify(e, env=env) for e in episodes]
        assert all(r.identical for r in reports), [str(r) for r in reports if not r.identical]
    # "trace back to any state": an env at step k of an episode, here on this backend
    episode = max(episodes_in(recorded[f"{SOKOBAN}/next_step"]), key=lambda e: len(e.steps))
    k = len(episode.steps) // 2
    with rock_envs.replay(episode, until_step=k, backend=backend.name, **backend.kwargs) as env:
        obs = env.step(from_json(episode.steps[k]["action"], env.action_space))[0]
    assert obs_hash(obs) == episode.steps[k]["obs"]


def test_a_non_deterministic_env_is_detected_at_the_right_step(tmp_path, runtime_ids, monkeypatch):
    rock_envs.register(NOISY, entry_point="tests.support.envs:NoisyEnv", kwargs={"noisy_from": 4}, override=True)
    with rock_envs.make_vec(NOISY, 2, backend="subprocess", num_workers=1, record=tmp_path / "rec") as venv:
        _run(venv, NOISY, 6)
    episodes = list(episodes_in(tmp_path / "rec"))
    reports = [verify(e) for e in episodes]
    assert [(r.identical, r.step, r.field) for r in reports] == [(False, 4, "obs")] * 2
    assert "differs at step 4: obs expected" in str(reports[0])
    with pytest.raises(rock_envs.SnapshotError, match="not deterministic"):
        rock_envs.replay(episodes[0], until_step=5)
    rock_envs.replay(episodes[0], until_step=3).close()  # before the noise: fine
    # the command line, as a user runs it: exit 1 and the step
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "noisy.toml").write_text(CATALOG)
    env = {**os.environ, "ROCK_ENVS_CATALOG_PATH": str(tmp_path / "catalog"), "COLUMNS": "300"}
    out = _cli("replay", str(tmp_path / "rec"), env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.count("differs at step 4: obs expected") == 2


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "rock_envs.cli", *args], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env
    )


def test_the_cli_exits_0_when_every_episode_replays_identically(recorded):
    out = _cli("replay", str(recorded[f"{SOKOBAN}/next_step"]), "--backend", "subprocess")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "identical" in out.stdout and "differs" not in out.stdout
    bad = _cli("replay", "/nonexistent/ep.jsonl")
    assert bad.returncode == 2 and "cannot read /nonexistent/ep.jsonl" in bad.stdout


def test_make_records_a_single_env_and_replay_puts_it_back(tmp_path):
    with rock_envs.make(SOKOBAN, record=tmp_path) as env:
        env.reset(seed=3)
        for action in MOVES * 2:
            env.step(action)
        expected = env.step(MOVES[0])[0]
    (path,) = tmp_path.iterdir()
    episode = read_episode(str(path))
    assert episode.header["seed"] == 3 and len(episode.steps) == 9 and episode.end["reason"] == "closed"
    with rock_envs.replay(path, until_step=8) as again:
        assert again.step(MOVES[0])[0] == expected


def test_bad_records_and_arguments_are_clear_errors(recorded, tmp_path):
    path = next(iter(sorted(Path(recorded[f"{SOKOBAN}/next_step"]).iterdir())))
    steps = len(read_episode(str(path)).steps)
    with pytest.raises(rock_envs.EnvArgumentError, match=rf"until_step must be in 0\.\.{steps}"):
        rock_envs.replay(path, until_step=steps + 1)
    cut = tmp_path / "cut.jsonl"
    cut.write_text(path.read_text()[:-10])
    with pytest.raises(rock_envs.EnvArgumentError, match="is not JSON .* the file may be truncated"):
        rock_envs.replay(cut)
    with pytest.raises(rock_envs.EnvArgumentError, match="record= needs a registered env id"):
        rock_envs.make_vec(lambda: rock_envs.make(CARTPOLE), 2, backend="local", record=tmp_path)
    with pytest.raises(rock_envs.EnvArgumentError, match="record= writes the env's kwargs as JSON"):
        rock_envs.make_vec(SOKOBAN, 1, backend="local", record=tmp_path, max_turns=object())


def test_a_forked_envs_record_starts_with_its_sources_prefix_and_replays(tmp_path):
    with rock_envs.make_vec(SOKOBAN, 4, backend="subprocess", num_workers=2, record=tmp_path) as venv:
        venv.reset(seed=[5, 6, 7, 8])
        venv.step(MOVES[:4])
        venv.fork(0, [1, 3])
        venv.restore(venv.snapshot([2]), [2])  # a plain restore: that episode ends there
        for action in MOVES:
            venv.step([action] * 4)
    episodes = {(e.header["index"], e.header["episode"]): e for e in episodes_in(tmp_path)}
    forked = episodes[(3, 1)]
    assert forked.header["seed"] == 5 and forked.header["forked_from"] == 0 and len(forked.steps) == 5
    assert episodes[(3, 0)].end == {"kind": "end", "steps": 1, "reason": "restored"}
    assert episodes[(2, 0)].end["reason"] == "restored" and (2, 1) not in episodes
    with rock_envs.make(SOKOBAN) as env:
        reports = [verify(e, env=env) for e in episodes.values()]
    assert all(r.identical for r in reports), [str(r) for r in reports if not r.identical]
