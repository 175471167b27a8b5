"""The subprocess backend's lanes (rock_envs/worker/lane.py) and its worker in the caller
(rock_envs/backends/caller_worker.py): the same trajectories as frames give, requests in order, a
sleeping side woken, a worker killed mid-step, bad options told, nothing left in /dev/shm."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

import rock_envs
from rock_envs.backends import create_group
from rock_envs.backends.options import SubprocessOptions
from rock_envs.core import pickling
from rock_envs.worker import lane
from rock_envs.worker.protocol import Batch, Call, Make, Reset, Step, Values
from tests.support.envs import CARTPOLE, InterruptEnv, ProbeEnv, SleepEnv

pytestmark = pytest.mark.skipif(not lane.available(), reason="lanes need Linux on x86-64 with glibc")


def _rollout(venv, steps: int = 120):
    rng = np.random.default_rng(0)
    out = [venv.reset(seed=7)]
    for _ in range(steps):
        out.append(venv.step(rng.integers(0, 2, venv.num_envs)))
    return out


def _same(a, b) -> bool:
    """Equal, looking into dicts, sequences and arrays (of objects too)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) and a.dtype != object:
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, (list, tuple, np.ndarray)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _lane_steps(venv) -> int:
    group = venv.group
    lanes = getattr(group, "others", group)._lanes
    return sum(lane.steps for lane in lanes if lane is not None)


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
@pytest.mark.parametrize("caller_worker", [False, True])
def test_lane_steps_give_the_trajectories_frames_give(mode, caller_worker):
    kwargs = {"num_workers": 2, "autoreset_mode": mode}
    with (
        rock_envs.make_vec(CARTPOLE, 6, backend="subprocess", caller_worker=caller_worker, **kwargs) as lanes,
        rock_envs.make_vec(CARTPOLE, 6, backend="subprocess", shared_memory=False, **kwargs) as frames,
    ):
        got, want = _rollout(lanes), _rollout(frames)
        assert _lane_steps(lanes) > 0, "no step went through a lane"
        assert _lane_steps(frames) == 0
    for g, w in zip(got, want):
        for a, b in zip(g[:-1], w[:-1]):
            np.testing.assert_array_equal(a, b)
        assert _same(g[-1], w[-1])  # same_step: the final_obs/final_info rows come by frame


def test_actions_the_columns_cannot_hold_exactly_go_by_frame():
    """A float action for a Discrete space is not cast into the int column: the env sees it as sent."""
    with rock_envs.make_vec(CARTPOLE, 2, backend="subprocess", num_workers=1, on_error="reset") as venv:
        venv.reset(seed=0)
        before = _lane_steps(venv)
        *_, infos = venv.step(np.array([0.5, 1.5]))
        assert _lane_steps(venv) == before
        assert list(infos["error"]["type"]) == ["AssertionError"] * 2  # CartPole's own check, as over frames
        venv.step(np.array([0, 1]))
        assert _lane_steps(venv) == before + 1


def test_requests_keep_their_order_between_lane_and_frames():
    group = create_group("subprocess", 1, SubprocessOptions())
    group.start()
    try:
        factory = pickling.dumps(lambda i: rock_envs.make(CARTPOLE))

        def send_and_wait(*requests):
            for request in requests:
                group.send(0, request)
            got = []
            while len(got) < len(requests):
                got.extend(reply for _, reply in group.wait(10))
            return got

        built = send_and_wait(Make([0, 1], factory))[0]
        group.on_built(0, [0, 1], built)
        send_and_wait(Reset([0, 1], [1, 2], [None, None]))
        # a frame read of the state, a lane step, a frame read of the state it left (one request per
        # env in flight, as the engine sends them: a second step of the same envs would overwrite
        # the shared observation rows before the first is read)
        replies = send_and_wait(Call([0, 1], "state", None), Step([0, 1], [1, 0]), Call([0, 1], "state", None))
        assert [type(r) for r in replies] == [Values, Batch, Values]
        before, stepped, after = replies
        assert not np.allclose(np.stack(before.values), stepped.obs)  # the Call ran before the step
        np.testing.assert_allclose(np.stack(after.values), stepped.obs, rtol=1e-6)  # and this one after
        assert group._lanes[0].steps == 1
    finally:
        group.close()


@pytest.mark.parametrize("spin", [0.0, 0.0002])
def test_a_sleeping_side_is_woken(spin):
    """Steps far longer than the spin and than a sleep slice: both sides sleep, and are woken."""
    rock_envs.register("test:Sleep-v0", entry_point=SleepEnv, override=True)
    with rock_envs.make_vec("test:Sleep-v0", 4, backend="subprocess", num_workers=2, spin=spin) as venv:
        venv.reset(seed=3)
        for t in range(1, 4):
            started = time.monotonic()
            obs, rewards, *_ = venv.step(np.full(4, 2 * lane.SLEEP_SLICE + 0.03))
            assert time.monotonic() - started >= 2 * lane.SLEEP_SLICE
            np.testing.assert_array_equal(obs[:, 0], [t] * 4)
            np.testing.assert_array_equal(rewards, [1.0] * 4)
        assert _lane_steps(venv) == 3 * 2  # each step, one per worker


def test_a_worker_killed_mid_lane_step_is_rebuilt():
    rock_envs.register("test:Sleep-v0", entry_point=SleepEnv, override=True)
    with rock_envs.make_vec("test:Sleep-v0", 4, backend="subprocess", num_workers=2) as venv:
        venv.reset(seed=5)
        venv.step_async(np.array([0.0, 0.0, 30.0, 30.0]))
        time.sleep(0.3)
        os.kill(venv.group.pid(1), signal.SIGKILL)
        obs, _, _, truncated, infos = venv.step_wait(timeout=20)
        np.testing.assert_array_equal(truncated, [False, False, True, True])
        assert list(infos["worker_restarted"]) == [False, False, True, True]
        np.testing.assert_array_equal(obs[:, 0], [1, 1, 7, 8])  # rebuilt and reset with their seeds (5 + i)
        obs, *_ = venv.step(np.zeros(4))
        np.testing.assert_array_equal(obs[:, 0], [2, 2, 1, 1])
        assert venv.group._lanes[1].steps == 1  # the new worker's lane carries its steps


@pytest.mark.parametrize(
    "spin, said", [(-1, "-1"), (2, "2"), ("0.1", "'0.1'"), (True, "True")], ids=["negative", "over", "str", "bool"]
)
def test_a_bad_spin_is_told(spin, said):
    with pytest.raises(
        rock_envs.EnvArgumentError, match=rf"make_vec\(spin=\.\.\.\)`: expected seconds from 0 to 1, got {said}"
    ):
        rock_envs.make_vec(CARTPOLE, 2, backend="subprocess", spin=spin)


def test_no_lane_file_is_left_in_dev_shm():
    def ours() -> list[str]:
        return [f for f in os.listdir("/dev/shm") if f.startswith(("rock-envs-lane-", f"rock-envs-{os.getpid()}-"))]

    before = ours()
    venv = rock_envs.make_vec(CARTPOLE, 4, backend="subprocess", num_workers=2)
    venv.reset(seed=0)
    venv.step(np.zeros(4, dtype=np.int64))
    assert ours() == before, "the lanes' and columns' names go as soon as both sides map them"
    os.kill(venv.group.pid(0), signal.SIGKILL)
    venv.step(np.zeros(4, dtype=np.int64))  # the restarted worker gets new ones
    venv.step(np.zeros(4, dtype=np.int64))
    venv.close()
    assert ours() == before


def test_the_caller_worker_steps_block_zero_here():
    rock_envs.register("test:Probe-v0", entry_point=ProbeEnv, override=True)
    with rock_envs.make_vec("test:Probe-v0", 4, backend="subprocess", num_workers=2, caller_worker=True) as venv:
        obs, _ = venv.reset(seed=1)
        pids = obs[:, 2].astype(int).tolist()
        assert pids[:2] == [os.getpid()] * 2 and pids[2] == pids[3] != os.getpid()
        assert venv.group.pid(0) is None and venv.group.pid(1) == pids[2]  # worker 0 has no process to kill
        venv.group.kill(0)  # as if its process had died: its envs are rebuilt, the caller goes on
        obs, _, _, truncated, infos = venv.step(np.zeros(4, dtype=np.int64))
        assert list(infos["worker_restarted"]) == [True, True, False, False]
        os.kill(venv.group.pid(1), signal.SIGKILL)
        obs, _, _, truncated, infos = venv.step(np.zeros(4, dtype=np.int64))
        assert list(infos["worker_restarted"]) == [False, False, True, True]
        assert obs[2, 2] != pids[2]


def test_ctrl_c_in_the_caller_workers_step_leaves_the_vector_env_usable():
    rock_envs.register("test:Interrupt-v0", entry_point=InterruptEnv, override=True)
    with rock_envs.make_vec("test:Interrupt-v0", 4, backend="subprocess", num_workers=2, caller_worker=True) as venv:
        venv.reset(seed=2)
        with pytest.raises(KeyboardInterrupt):
            venv.step(np.array([-1.0, 0.0, 0.0, 0.0]))
        obs, _ = venv.reset(seed=4)  # what was in flight was drained: nothing hangs
        np.testing.assert_array_equal(obs[:, 0], [4, 5, 6, 7])
        obs, *_ = venv.step(np.zeros(4))
        np.testing.assert_array_equal(obs[:, 0], [1, 1, 1, 1])
