"""Env snapshots on every backend: restore and fork continue step by step as the original would
(observations, rewards, done flags and RNG draws); bad snapshots are clear errors; restore="snapshot"
rebuilds a killed worker's envs at their last snapshot."""

from __future__ import annotations

import dataclasses
import pickle
import random
import time

import numpy as np
import pytest

import rock_envs
from tests.support.envs import CARTPOLE, MOVES, NORMAL, SOKOBAN, LockedEnv, LockedTextEnv, NoisyEnv
from tests.support.processes import kill_worker


def _actions(env_id: str, rng: random.Random, n: int) -> list:
    if env_id == CARTPOLE:
        return [rng.randrange(2) for _ in range(n)]
    return [MOVES[rng.randrange(4)] for _ in range(n)]


def _trajectory(venv, env_id: str, seed: int, steps: int) -> list:
    """`steps` steps with seeded actions; each step's results and every env's next random action."""
    rng, out = random.Random(seed), []
    for _ in range(steps):
        obs, rewards, terms, truncs, _ = venv.step(_actions(env_id, rng, venv.num_envs))
        draws = venv.call("sample_random_action")
        out.append((repr(obs), rewards.tolist(), terms.tolist(), truncs.tolist(), repr(draws)))
    return out


@pytest.mark.parametrize("mode", ["pickle", "replay"])
@pytest.mark.parametrize("env_id", [SOKOBAN, CARTPOLE])
def test_a_restored_env_continues_step_by_step_as_the_original(make, env_id, mode):
    venv = make(env_id, 4, snapshot_mode=mode)
    venv.reset(seed=11)
    _trajectory(venv, env_id, seed=1, steps=3)
    snapshots = venv.snapshot()
    assert [s.mode for s in snapshots] == [mode] * 4
    original = _trajectory(venv, env_id, seed=2, steps=25)  # CartPole's episodes end in here: autoreset too
    venv.restore(snapshots)
    assert _trajectory(venv, env_id, seed=2, steps=25) == original
    venv.restore(snapshots[::-1], [3, 2, 1, 0])  # each snapshot back into its own env, by id
    assert _trajectory(venv, env_id, seed=2, steps=5) == original[:5]


def test_fork_copies_one_env_into_others_inside_and_across_workers(make):
    venv = make(SOKOBAN, 4)  # envs 0, 1 on worker 0; envs 2, 3 on worker 1
    venv.reset(seed=[3, 4, 5, 6])
    venv.step([MOVES[0], MOVES[1], MOVES[2], MOVES[3]])
    venv.fork(0, [1, 2, 3])
    for step in range(6):
        obs, rewards, terms, truncs, _ = venv.step([MOVES[step % 4]] * 4)
        assert len(set(obs)) == 1 and len(set(rewards.tolist())) == 1
        draws = venv.call("sample_random_action")  # GEM's per-env `random` state was copied too
        assert len(set(draws)) == 1, draws
    venv.reset(seed=[3, 4, 5, 6])  # forked envs are ordinary envs: a reset gives each its own episode
    assert len(set(venv.step([MOVES[0]] * 4)[0])) > 1


def test_a_snapshot_is_picklable_and_carries_id_kwargs_and_rng(make):
    venv = make(SOKOBAN, 2, max_turns=7)
    venv.reset(seed=0)
    (snap,) = venv.snapshot([1])
    assert (snap.env_id, snap.kwargs, snap.index, snap.mode) == (SOKOBAN, {"max_turns": 7}, 1, "pickle")
    assert snap.rng["kind"] == "gem" and snap.rng["random"] is not None  # GEM's per-env `random` state
    again = pickle.loads(pickle.dumps(snap))
    stored = rock_envs.EnvSnapshot.from_bytes(snap.to_bytes())
    venv.restore([again, stored], [0, 1])
    obs = venv.step([MOVES[2]] * 2)[0]
    assert obs[0] == obs[1]


def test_bad_snapshots_are_clear_errors_and_the_envs_go_on(make):
    venv = make(SOKOBAN, 3)
    venv.reset(seed=0)
    good = venv.snapshot()
    with make(CARTPOLE, 1) as other:
        other.reset(seed=0)
        (foreign,) = other.snapshot()
    with pytest.raises(rock_envs.SnapshotError, match="a snapshot of env 'CartPole-v1' cannot be restored into env 1"):
        venv.restore([good[0], foreign], [0, 1])
    truncated = dataclasses.replace(good[2], data=good[2].data[:-7])
    with pytest.raises(rock_envs.SnapshotError, match="corrupted or truncated"):
        venv.restore([truncated], [2])
    with pytest.raises(rock_envs.SnapshotError, match="corrupted or truncated"):
        rock_envs.EnvSnapshot.from_bytes(good[0].to_bytes()[:-20])
    with pytest.raises(rock_envs.EnvArgumentError, match=r"`fork`: dst_env_ids must be distinct env ids in 0\.\.2"):
        venv.fork(0, [1, 3])
    with pytest.raises(rock_envs.EnvArgumentError, match=r"`fork`: src_env_id must be an env id in 0\.\.2"):
        venv.fork(-1, [1])
    with pytest.raises(rock_envs.EnvArgumentError, match="got 2 snapshots for 3 env ids"):
        venv.restore(good[:2], [0, 1, 2])
    first = venv.step([MOVES[0]] * 3)[0]
    venv.restore(good)  # nothing above changed an env: the same step gives the same observations
    assert venv.step([MOVES[0]] * 3)[0] == first
    venv.close()
    with pytest.raises(rock_envs.EnvClosedError, match="`restore` after `close\\(\\)`"):
        venv.restore(good)


def test_auto_mode_replays_an_env_that_does_not_pickle_and_pickle_mode_says_why(make, runtime_ids):
    rock_envs.register("test:Locked-v0", entry_point=LockedEnv, override=True)
    venv = make("test:Locked-v0", 2)
    venv.reset(seed=4)
    venv.step([2, 0])
    snapshots = venv.snapshot()
    assert [s.mode for s in snapshots] == ["replay", "replay"]
    original = [venv.step([1, 2])[:3] for _ in range(5)]
    venv.restore(snapshots)
    again = [venv.step([1, 2])[:3] for _ in range(5)]
    np.testing.assert_array_equal([o for o, _, _ in again], [o for o, _, _ in original])
    strict = make("test:Locked-v0", 1, snapshot_mode="pickle")
    strict.reset(seed=0)
    with pytest.raises(rock_envs.SnapshotError, match=r"env 'test:Locked-v0' \(env 0\) does not pickle \(TypeError"):
        strict.snapshot()


def test_an_env_that_neither_pickles_nor_replays_is_named_with_why(make, runtime_ids):
    rock_envs.register("test:LockedText-v0", entry_point=LockedTextEnv, override=True)
    venv = make("test:LockedText-v0", 2)
    venv.reset()  # no seed: the word comes from OS entropy
    with pytest.raises(rock_envs.SnapshotError, match=r"'test:LockedText-v0' \(env 0\) supports neither mechanism"):
        venv.snapshot()
    venv.reset(seed=3)  # with a seed, replay works
    assert [s.mode for s in venv.snapshot()] == ["replay", "replay"]


def test_replay_of_a_non_deterministic_env_is_refused(make, runtime_ids):
    rock_envs.register("test:Noisy-v0", entry_point=NoisyEnv, kwargs={"noisy_from": 3}, override=True)
    venv = make("test:Noisy-v0", 2, snapshot_mode="replay")
    venv.reset(seed=0)
    venv.step([1, 1])
    early = venv.snapshot()  # one step: still deterministic
    venv.restore(early)
    for _ in range(3):
        venv.step([0, 0])
    late = venv.snapshot()
    with pytest.raises(rock_envs.SnapshotError, match="not deterministic"):
        venv.restore(late)
    assert venv.step([0, 0])[1].tolist() == [1.0, 1.0]  # the envs go on


def test_restore_snapshot_rebuilds_a_killed_workers_envs_at_their_last_snapshot(make, probe):
    venv = make(probe, 4, restore="snapshot")
    venv.reset(seed=5)
    for _ in range(3):
        venv.step([NORMAL] * 4)
    venv.snapshot()  # every env at step 3 of its episode
    venv.step([NORMAL] * 4)
    kill_worker(venv, 0)
    time.sleep(0.2)
    obs, rewards, terms, truncs, infos = venv.step([NORMAL] * 4)
    assert list(infos["_worker_restarted"]) == [True, True, False, False]
    assert list(infos["_restored_snapshot"]) == [True, True, False, False]
    assert not truncs.any()  # the episode goes on from the snapshot
    np.testing.assert_array_equal(obs[:, :2], [[3, 5], [3, 6], [5, 7], [5, 8]])
    obs = venv.step([NORMAL] * 4)[0]
    np.testing.assert_array_equal(obs[:, :2], [[4, 5], [4, 6], [6, 7], [6, 8]])


def test_by_default_a_killed_workers_envs_are_reset_not_restored(make, probe):
    venv = make(probe, 2, num_workers=1)
    venv.reset(seed=5)
    venv.step([NORMAL] * 2)
    venv.snapshot()
    kill_worker(venv, 0)
    time.sleep(0.2)
    obs, _, _, truncs, infos = venv.step([NORMAL] * 2)
    assert truncs.all() and "restored_snapshot" not in infos
    np.testing.assert_array_equal(obs[:, :2], [[0, 5], [0, 6]])
