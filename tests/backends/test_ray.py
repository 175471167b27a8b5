"""The ray backend on a real local Ray cluster: the vector contract, faults, and who owns the cluster."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import cloudpickle
import numpy as np
import pytest

import rock_envs
from rock_envs.core.errors import EnvArgumentError
from tests.support.envs import MOVES, SOKOBAN
from tests.support.paths import PYTHON, ROOT

pytestmark = pytest.mark.ray

# Ray workers cannot import this test module: ship the env factories below by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _text_rollout(backend: str, steps: int = 6, **options):
    with rock_envs.make_vec(SOKOBAN, 6, backend=backend, num_workers=1 if backend == "local" else 3, **options) as venv:
        out = [venv.reset(seed=3)[0]]
        for t in range(steps):
            obs, rewards, terms, truncs, _ = venv.step([MOVES[(t + i) % 4] for i in range(6)])
            out.append((obs, rewards.tolist(), terms.tolist(), truncs.tolist()))
        return out


def test_same_seeds_same_trajectories_as_local(ray_cluster):
    assert _text_rollout("ray") == _text_rollout("local")


def test_array_envs_step_and_stack(ray_cluster):
    with rock_envs.make_vec("CartPole-v1", 8, backend="ray", num_workers=2) as venv:
        assert venv.group.name == "ray" and venv.group.owns_ray is False
        obs, infos = venv.reset(seed=0)
        assert obs.shape == (8, 4) and obs.dtype == np.float32
        for _ in range(30):
            obs, rewards, terms, truncs, infos = venv.step(np.ones(8, dtype=np.int64))
        assert obs.shape == (8, 4) and rewards.shape == (8,)
        obs[0, 0] = 1.0  # the caller owns what it gets (Ray hands out read-only buffers)
        assert venv.get_attr("spec")[0].id == "CartPole-v1"
        assert len(venv.call("render")) == 8


def test_send_recv_returns_ready_envs(ray_cluster):
    with rock_envs.make_vec("CartPole-v1", 8, backend="ray", num_workers=4, batch_size=4) as venv:
        venv.async_reset(seed=1)
        seen: set[int] = set()
        deadline = time.monotonic() + 120  # a hang guard: an actor may take seconds to start on a loaded machine
        while seen != set(range(8)) and time.monotonic() < deadline:
            env_ids, obs, rewards, terms, truncs, infos = venv.recv()
            assert len(env_ids) == 4 and len(set(env_ids.tolist())) == 4 and obs.shape == (4, 4)
            seen.update(env_ids.tolist())
            venv.send(np.zeros(4, dtype=np.int64), env_ids)
        venv.recv()
        assert seen == set(range(8))


def test_placement_group_pack(ray_cluster):
    with rock_envs.make_vec(
        "CartPole-v1", 4, backend="ray", num_workers=2, placement="pack", worker_resources={"num_cpus": 0.5}
    ) as venv:
        assert venv.group._pg is not None
        venv.reset(seed=0)
        venv.step(np.zeros(4, dtype=np.int64))
    assert not [pg for pg in ray_cluster.util.placement_group_table().values() if pg["state"] == "CREATED"]


def test_bad_options_name_the_argument(ray_cluster):
    with pytest.raises(EnvArgumentError, match="placement"):
        rock_envs.make_vec("CartPole-v1", 2, backend="ray", placement="everywhere")
    with pytest.raises(EnvArgumentError, match="worker_resources"):
        rock_envs.make_vec("CartPole-v1", 2, backend="ray", worker_resources={"cpu": 1})
    with pytest.raises(EnvArgumentError, match=r"`make_vec\(start_timeout=...\)`: expected a positive number"):
        rock_envs.make_vec("CartPole-v1", 2, backend="ray", start_timeout=0)
    with pytest.raises(EnvArgumentError, match="need 200 CPUs"):
        rock_envs.make_vec("CartPole-v1", 2, backend="ray", num_workers=2, worker_resources={"num_cpus": 100})


def _slow_env():
    """An env whose step takes a while, so a kill lands mid-step; defined here, shipped by value."""
    import time

    import gymnasium as gym

    class SlowEnv(gym.Env):
        observation_space = gym.spaces.Box(0, 1000, (1,), np.float64)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = float(self.np_random.integers(100, 1000))  # the seed shows in the first obs
            return np.array([self.t]), {}

        def step(self, action):
            time.sleep(1.0 if action else 0.0)
            self.t += 1
            return np.array([self.t]), 1.0, False, False, {}

    return SlowEnv()


def test_actor_killed_mid_step_is_rebuilt_reseeded_and_flagged(ray_cluster):
    with rock_envs.make_vec(_slow_env, 6, backend="ray", num_workers=3, timeout=120) as venv:
        first, _ = venv.reset(seed=10)
        old = venv.group.describe(1)
        venv.step_async(np.ones(6, dtype=np.int64))
        venv.group.kill(1)  # envs 2 and 3, asleep in their step
        obs, rewards, terms, truncs, infos = venv.step_wait()
        assert venv.group.describe(1)["actor_id"] != old["actor_id"]
        flagged = infos["worker_restarted"] & infos["_worker_restarted"]
        assert flagged.tolist() == [False, False, True, True, False, False]
        assert truncs.tolist() == flagged.tolist() and rewards.tolist() == [1, 1, 0, 0, 1, 1]
        assert obs[2:4].tolist() == first[2:4].tolist()  # rebuilt and re-seeded with their last seeds
        assert obs[[0, 1, 4, 5]].tolist() == (first[[0, 1, 4, 5]] + 1).tolist()
        obs, rewards, *_ = venv.step(np.zeros(6, dtype=np.int64))  # and it goes on
        assert rewards.tolist() == [1.0] * 6


def test_actor_killed_while_idle_is_found_on_next_step(ray_cluster):
    with rock_envs.make_vec("CartPole-v1", 4, backend="ray", num_workers=2, timeout=120) as venv:
        venv.reset(seed=0)
        venv.group.kill(0)
        obs, rewards, terms, truncs, infos = venv.step(np.zeros(4, dtype=np.int64))
        assert infos["worker_restarted"][:2].all() and truncs[:2].all() and not truncs[2:].any()


def test_cluster_started_by_the_caller_is_left_running(ray_cluster):
    venv = rock_envs.make_vec("CartPole-v1", 2, backend="ray", num_workers=1)
    venv.close()
    venv.close()  # twice is fine
    assert ray_cluster.is_initialized()
    assert ray_cluster.get(ray_cluster.put(7)) == 7


SCRIPT = textwrap.dedent("""
    import os, psutil, ray, rock_envs
    os.environ.pop("RAY_ADDRESS", None)
    assert not ray.is_initialized()
    venv = rock_envs.make_vec("CartPole-v1", 2, backend="ray", num_workers=1)
    venv.reset(seed=0)
    assert venv.group.owns_ray and ray.is_initialized()
    children = psutil.Process().children(recursive=True)
    assert any("raylet" in " ".join(p.cmdline()) for p in children), [p.cmdline()[:2] for p in children]
    venv.close()
    assert not ray.is_initialized()
    gone, alive = psutil.wait_procs(children, timeout=60)
    print("left:", [p.pid for p in alive])
""")


@pytest.mark.slow
def test_cluster_started_by_the_backend_is_shut_down_on_close():
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([PYTHON, "-c", SCRIPT], capture_output=True, text=True, timeout=240, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "left: []" in out.stdout
