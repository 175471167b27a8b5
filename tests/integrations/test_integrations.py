"""Each integration for real: Gymnasium's registry, SB3's VecEnv, RLlib, GEM and a ROLL-style loop.

The examples run as scripts, top to bottom, with small budgets.
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rock_envs
from tests.support.envs import SOKOBAN
from tests.support.paths import PYTHON, ROOT


def run_example(name: str, *args: str, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # examples start their own Ray
    out = subprocess.run(
        [PYTHON, str(ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out.stdout


# ---- Gymnasium ---------------------------------------------------------------------------------


def test_gymnasium_ids_map_both_ways():
    from rock_envs.integrations import gymnasium as rgym

    assert rgym.gym_id(SOKOBAN) == "rock/game-Sokoban-v0-easy"
    assert rgym.gym_id("CartPole-v1") == "rock/CartPole-v1"
    assert rgym.rock_id("rock/game-Sokoban-v0-easy") == SOKOBAN
    assert "rock/game-Sokoban-v0-easy" in gymnasium.registry
    with pytest.raises(rock_envs.EnvArgumentError, match="register_all"):
        rgym.rock_id("rock/nothing-here")


def test_gymnasium_make_gives_the_same_env(runtime_ids):
    from rock_envs.integrations import gymnasium as rgym

    env = gymnasium.make("rock/game-Sokoban-v0-easy")
    obs, _ = env.reset(seed=5)
    direct = rock_envs.make(SOKOBAN)
    assert obs == direct.reset(seed=5)[0]
    assert env.step("\\boxed{up}")[:4] == direct.step("\\boxed{up}")[:4]
    assert env.spec.id == "rock/game-Sokoban-v0-easy"
    cartpole = gymnasium.make("rock/CartPole-v1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CartPole's own unbounded Box
        check_env(cartpole.unwrapped, skip_render_check=True)
    rock_envs.register("acme:Late-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv")
    assert rgym.register_all("acme:*") == ["rock/acme-Late-v0"]
    assert gymnasium.make("rock/acme-Late-v0").reset(seed=0)[0].shape == (4,)


def test_gymnasium_make_vec_uses_rock_envs_vector_env():
    venv = gymnasium.make_vec("rock/CartPole-v1", num_envs=4, backend="subprocess", num_workers=2)
    try:
        assert type(venv).__name__ == "RockVectorEnv" and venv.group.name == "subprocess"
        obs, _ = venv.reset(seed=0)
        assert obs.shape == (4, 4)
        assert venv.step(np.zeros(4, dtype=np.int64))[1].tolist() == [1.0] * 4
    finally:
        venv.close()
    sync = gymnasium.make_vec("rock/game-Sokoban-v0-easy", num_envs=2, vectorization_mode="sync")
    assert len(sync.reset(seed=1)[0]) == 2
    sync.close()


# ---- Stable-Baselines3 -------------------------------------------------------------------------


def test_sb3_vecenv_autoreset_as_sb3_expects():
    pytest.importorskip("stable_baselines3")
    from rock_envs.integrations.sb3 import RockVecEnv

    venv = RockVecEnv("CartPole-v1", num_envs=4, backend="subprocess", num_workers=2)
    try:
        venv.seed(3)
        obs = venv.reset()
        assert obs.shape == (4, 4)
        finished = []
        for _ in range(200):
            obs, rewards, dones, infos = venv.step(np.ones(4, dtype=np.int64))  # always right: falls soon
            assert rewards.dtype == np.float32 and len(infos) == 4
            for k in np.flatnonzero(dones):
                finished.append(infos[k])
                assert infos[k]["terminal_observation"].shape == (4,)
                assert not np.array_equal(infos[k]["terminal_observation"], obs[k])  # obs is the new episode's
            if len(finished) >= 4:
                break
        assert finished and all(f["TimeLimit.truncated"] is False for f in finished)
        assert venv.get_attr("spec", indices=[1])[0].id == "CartPole-v1"
        from stable_baselines3.common.monitor import Monitor

        assert venv.env_is_wrapped(gymnasium.wrappers.TimeLimit) == [True] * 4  # gymnasium.make adds it, as in SB3
        assert venv.env_is_wrapped(Monitor) == [False] * 4
    finally:
        venv.close()


@pytest.mark.slow
def test_sb3_ppo_example_trains():
    pytest.importorskip("stable_baselines3")
    out = run_example("sb3_ppo.py", "--timesteps", "2048")
    assert "trained 2048 steps on RockVectorEnv('CartPole-v1', num_envs=8, backend='subprocess'" in out
    assert "episodes recorded, mean return" in out


# ---- RLlib ---------------------------------------------------------------------------------------


@pytest.mark.ray
@pytest.mark.slow
def test_rllib_ppo_example_samples_through_rock_envs():
    pytest.importorskip("ray.rllib")
    pytest.importorskip("torch")
    out = run_example("rllib_ppo.py", "--iterations", "2")
    lines = [line for line in out.splitlines() if line.startswith("iteration")]
    assert len(lines) == 2, out
    assert "episode_return_mean nan" not in out and "episodes 0" not in lines[-1]
    assert "sampled through: [\"RockVectorEnv('rllib-single-agent-env-v0', num_envs=4, backend='subprocess'" in out


# ---- GEM -----------------------------------------------------------------------------------------


def test_gem_wrappers_on_a_rock_envs_env():
    from gem.wrappers.episode_tracking_wrapper import EpisodeTrackingWrapper

    import rock_envs.integrations.gem as rgem

    env = rgem.make(SOKOBAN, wrappers="concat_with_action,episode_tracking")
    assert isinstance(env, EpisodeTrackingWrapper)
    obs, info = env.reset(4)  # GEM's positional seed
    assert info["step_counter"] == 0
    obs, reward, terminated, truncated, info = env.step("\\boxed{left}")
    assert info["step_counter"] == 1 and "\\boxed{left}" in obs
    with pytest.raises(rock_envs.EnvArgumentError, match="unknown GEM wrapper 'nope'"):
        rgem.make(SOKOBAN, wrappers="nope")


def test_gem_loop_example_runs_on_local_and_subprocess():
    out = run_example("gem_loop.py", "--episodes", "2")
    assert "part 1, game:Sokoban-v0-easy on local: returns [" in out
    assert "part 2, GEM wrappers EpisodeTrackingWrapper: step_counter 3" in out
    assert "on subprocess" in run_example("gem_loop.py", "--episodes", "1", "--backend", "subprocess")


# ---- a ROLL-style rollout -----------------------------------------------------------------------


def test_roll_style_rollout_writes_seeded_groups(tmp_path):
    path = tmp_path / "rollouts.jsonl"
    out = run_example(
        "roll_rollout.py",
        "--groups",
        "3",
        "--group-size",
        "2",
        "--episodes",
        "2",
        "--max-turns",
        "5",
        "--out",
        str(path),
    )
    assert "12 trajectories from 3 groups x 2 envs x 2 episodes" in out
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 12
    assert {(r["group"], r["episode"], r["seed"]) for r in records} == {
        (g, e, 1000 * g + e) for g in range(3) for e in range(2)
    }
    for r in records:
        assert 1 <= len(r["turns"]) <= 5 and r["turns"][0]["observation"].startswith("You are solving the Sokoban")
        assert r["return"] == sum(t["reward"] for t in r["turns"])
    # the envs of one group start from the same board
    first = {(r["group"], r["episode"]): r["turns"][0]["observation"] for r in records if r["env_index"] == 0}
    assert all(r["turns"][0]["observation"] == first[r["group"], r["episode"]] for r in records)
