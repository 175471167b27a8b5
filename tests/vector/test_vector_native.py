"""`vectorize="native"|"auto"`: one native vector env per worker for its block, behind the same face."""

from __future__ import annotations

import re
import time

import gymnasium
import numpy as np
import pytest

import rock_envs
from tests.support.envs import CARTPOLE, SOKOBAN, sync_cartpoles
from tests.support.processes import kill_worker

ACTIONS = np.random.default_rng(3).integers(0, 2, size=(40, 8))


def _gymnasium_native(lo: int, hi: int, seed: int, steps: int) -> list[np.ndarray]:
    """Gymnasium's own native env for envs lo..hi-1, with their actions."""
    env = gymnasium.make_vec(CARTPOLE, hi - lo, vectorization_mode="vector_entry_point")
    seen = [env.reset(seed=seed)[0]]
    seen += [env.step(ACTIONS[t, lo:hi])[0] for t in range(steps)]
    env.close()
    return seen


def test_each_worker_block_steps_as_gymnasiums_native_vector_env(make):
    venv = make(CARTPOLE, 8, num_workers=2, vectorize="native")
    assert venv.vectorize == "native" and venv.observation_space.shape == (8, 4)
    seen = [venv.reset(seed=0)[0]]
    for t in range(40):
        obs, rewards, terms, truncs, infos = venv.step(ACTIONS[t])
        seen.append(obs)
    block0, block1 = _gymnasium_native(0, 4, 0, 40), _gymnasium_native(4, 8, 4, 40)  # a block: its first env's seed
    for ours, a, b in zip(seen, block0, block1):
        np.testing.assert_array_equal(ours, np.concatenate([a, b]))


def test_send_recv_of_whole_blocks_and_a_part_refused(make):
    venv = make(CARTPOLE, 8, num_workers=2, vectorize="native", batch_size=4)
    venv.async_reset(seed=0)
    got = sorted(int(i) for _ in range(2) for i in venv.recv()[0])
    assert got == list(range(8))
    venv.send(ACTIONS[0])
    ids, obs, *_ = venv.recv()
    assert obs.shape == (4, 4) and sorted(ids) in ([0, 1, 2, 3], [4, 5, 6, 7])
    venv.recv()
    venv.send(ACTIONS[0][:2], [0, 1])
    with pytest.raises(rock_envs.RemoteError, match=re.escape("`send` of envs [0, 1] alone: with vectorize='native'")):
        venv.recv()


def test_calls_on_single_envs_are_refused_with_the_fix(make):
    venv = make(CARTPOLE, 4, vectorize="native")
    with pytest.raises(rock_envs.RemoteError, match=re.escape("use vectorize='per_env' (one env object per slot)")):
        venv.get_attr("gravity")


def test_auto_uses_native_where_it_can_and_says_so(make):
    assert make(CARTPOLE, 4, vectorize="auto").vectorize == "native"
    assert make(SOKOBAN, 2, vectorize="auto").vectorize == "per_env"
    assert make(CARTPOLE, 4, vectorize="auto", autoreset_mode="same_step").vectorize == "per_env"
    assert make(CARTPOLE, 4).vectorize == "per_env"


def test_native_that_cannot_be_says_why(backend):
    with pytest.raises(rock_envs.EnvArgumentError, match=re.escape("autoresets in next_step mode, not same_step")):
        rock_envs.make_vec(CARTPOLE, 4, backend="local", vectorize="native", autoreset_mode="same_step")
    with pytest.raises(rock_envs.EnvArgumentError, match=re.escape(f"{SOKOBAN!r} has no native vector implementation")):
        rock_envs.make_vec(SOKOBAN, 4, backend="local", vectorize="native")
    with pytest.raises(rock_envs.EnvArgumentError, match=re.escape("vectorize must be one of")):
        rock_envs.make_vec(CARTPOLE, 4, backend="local", vectorize="fast")


def test_a_plugins_own_vector_entry_point(make, runtime_ids):
    rock_envs.register(
        "test:Carts-v0",
        entry_point="gymnasium.envs.classic_control:CartPoleEnv",
        vector_entry_point=sync_cartpoles,
        override=True,
    )
    venv = make("test:Carts-v0", 4, num_workers=1, vectorize="native")
    obs, _ = venv.reset(seed=5)
    ref = sync_cartpoles(4)
    np.testing.assert_array_equal(obs, ref.reset(seed=5)[0])
    np.testing.assert_array_equal(venv.step(ACTIONS[0, :4])[0], ref.step(ACTIONS[0, :4])[0])


def test_a_killed_native_worker_is_rebuilt_and_flagged(make, process_backend):
    venv = make(CARTPOLE, 8, num_workers=2, vectorize="native")
    first, _ = venv.reset(seed=0)
    kill_worker(venv, 1)
    time.sleep(0.2)
    obs, rewards, terms, truncs, infos = venv.step(ACTIONS[0])
    assert list(infos["_worker_restarted"]) == [False] * 4 + [True] * 4
    np.testing.assert_array_equal(obs[4:], first[4:])  # block 1 again from its seed
    assert venv.step(ACTIONS[1])[0].shape == (8, 4)
