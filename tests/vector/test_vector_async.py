"""step_async/step_wait ordering, EnvPool-style send/recv, start methods, event loops and threads."""

from __future__ import annotations

import asyncio
import re
import threading

import numpy as np
import pytest

import rock_envs
from tests.support.envs import CARTPOLE, NORMAL, SLOW, SOKOBAN


def test_step_async_then_step_wait(make):
    venv = make(CARTPOLE, 4)
    venv.reset(seed=0)
    venv.step_async(np.array([0, 1, 0, 1]))
    obs, rewards, terms, truncs, infos = venv.step_wait()
    assert obs.shape == (4, 4) and list(rewards) == [1.0] * 4


def test_out_of_order_calls_raise_exact_messages(make):
    venv = make(CARTPOLE, 2)
    venv.reset(seed=0)
    with pytest.raises(
        rock_envs.CallOrderError, match=re.escape("`step_wait`: no step is pending; call `step_async(actions)` first.")
    ):
        venv.step_wait()
    venv.step_async([0, 1])
    _all_refused(
        venv,
        ["step_async", "reset", "send", "get_attr", "call", "async_reset"],
        "`{}`: a `step_async` is still waiting; call `step_wait()` first.",
    )
    venv.step_wait()
    with pytest.raises(
        rock_envs.CallOrderError, match=re.escape("`recv`: nothing is in flight; call `send(actions, env_ids)` first.")
    ):
        venv.recv()
    venv.send([0], [1])
    with pytest.raises(
        rock_envs.CallOrderError, match=re.escape("`send`: envs [1] still have a step in flight; `recv()` them first.")
    ):
        venv.send([0], [1])
    _all_refused(
        venv,
        ["step_async", "reset", "get_attr", "async_reset"],
        "`{}`: envs [1] still have a `send` in flight; `recv()` them first.",
    )
    venv.recv()
    assert venv.step([0, 0])[0].shape == (2, 4)  # and the env goes on


def _all_refused(venv, calls, message):
    """Each of `calls` raises CallOrderError with `message` (formatted with the call's name)."""
    attempts = {
        "step_async": lambda: venv.step_async([0, 1]),
        "reset": venv.reset,
        "send": lambda: venv.send([0, 1]),
        "get_attr": lambda: venv.get_attr("spec"),
        "call": lambda: venv.call("render"),
        "async_reset": venv.async_reset,
    }
    for call in calls:
        with pytest.raises(rock_envs.CallOrderError, match=re.escape(message.format(call))):
            attempts[call]()


def test_send_recv_returns_the_fast_envs_first_with_their_ids(make, probe):
    # One env per worker: envs sharing a worker run one after another (see `RockVectorEnv.send`). The
    # slow env is the last: worker 0 may be the caller itself (caller_worker), which waits for its own.
    venv = make(probe, 4, batch_size=3, delay=1.0, num_workers=4)
    venv.async_reset(seed=0)
    ids, obs, *_ = venv.recv()
    ids2, obs2, *_ = venv.recv(timeout=30)
    all_ids = [*ids.tolist(), *ids2.tolist()]
    venv.send([NORMAL, NORMAL, NORMAL, SLOW], [0, 1, 2, 3])
    ids, obs, rewards, terms, truncs, infos = venv.recv(timeout=30)
    if venv.group.name != "local":  # the local backend steps each env when sent: no env is "first"
        assert sorted(ids.tolist()) == [0, 1, 2]  # the slow env did not hold the others back
    assert len(ids) == 3 and obs.shape == (3, 3) and list(rewards) == [1.0] * 3
    np.testing.assert_array_equal(obs[:, 0], [1, 1, 1])
    assert list(infos["steps"]) == [1, 1, 1]
    venv.send([NORMAL] * len(ids), ids)  # step the fast envs again while env 0 is still busy
    ids2, obs2, *_ = venv.recv(timeout=30)
    if venv.group.name != "local":
        assert sorted(ids2.tolist()) == [0, 1, 2]
        np.testing.assert_array_equal(obs2[:, 0], [2, 2, 2])
        ids3, obs3, *_ = venv.recv(timeout=30)  # only env 0 is left in flight
        assert ids3.tolist() == [3] and obs3[0, 0] == 1
    assert sorted(all_ids) == [0, 1, 2, 3]


def test_send_with_env_ids_as_array_and_actions_for_those(make):
    venv = make(SOKOBAN, 4, batch_size=2)
    venv.reset(seed=0)
    venv.send(["\\boxed{up}", "\\boxed{left}"], np.array([3, 1]))
    ids, obs, rewards, *_ = venv.recv(timeout=30)
    assert sorted(ids.tolist()) == [1, 3] and len(obs) == 2 and all(isinstance(o, str) for o in obs)
    with pytest.raises(rock_envs.EnvArgumentError, match="env_ids must be distinct ints in 0..3"):
        venv.send(["\\boxed{up}"], [4])


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_start_methods(make, process_backend, method):
    venv = make(lambda: __import__("gymnasium").make("CartPole-v1"), 3, start_method=method)
    obs, _ = venv.reset(seed=0)
    np.testing.assert_array_equal(obs, np.stack([rock_envs.make(CARTPOLE).reset(seed=i)[0] for i in range(3)]))
    assert venv.step([0, 1, 0])[0].shape == (3, 4)


def test_a_bad_start_method_is_a_clear_error(process_backend):
    with pytest.raises(rock_envs.EnvArgumentError, match=r"start_method=\.\.\.\)`: expected one of"):
        rock_envs.make_vec(CARTPOLE, 2, backend=process_backend.name, start_method="teleport")


def test_works_inside_a_running_event_loop_with_threads_around(make):
    stop = threading.Event()
    spinners = [threading.Thread(target=stop.wait, daemon=True) for _ in range(3)]
    for t in spinners:
        t.start()

    async def main():
        venv = make(SOKOBAN, 2)  # made while the loop runs
        obs, _ = venv.reset(seed=0)
        ran = await asyncio.to_thread(lambda: venv.step(["\\boxed{up}", "\\boxed{down}"]))
        return obs, ran

    try:
        obs, ran = asyncio.run(main())
    finally:
        stop.set()
    assert len(obs) == 2 and len(ran[0]) == 2


def test_an_interrupted_wait_is_drained_by_the_next_call(make, process_backend, probe):
    import signal
    import threading as th

    venv = make(probe, 2, delay=1.0)
    venv.reset(seed=0)
    venv.step_async([SLOW, NORMAL])
    th.Timer(0.2, lambda: signal.raise_signal(signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        venv.step_wait()
    obs, _ = venv.reset(seed=3)  # waits for the interrupted step, then resets
    np.testing.assert_array_equal(obs[:, 1], [3, 4])
    assert venv.step([NORMAL, NORMAL])[1].tolist() == [1.0, 1.0]
