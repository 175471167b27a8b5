"""Envs that raise, workers killed mid-step, timeouts, bad actions: clear errors, nothing else breaks."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

import rock_envs
from tests.support.envs import CARTPOLE, NORMAL, RAISE, SLOW, SOKOBAN
from tests.support.processes import kill_worker


def test_an_env_raising_in_step_reports_it_is_reset_and_the_others_go_on(make, probe):
    venv = make(probe, 4)
    venv.reset(seed=0)
    venv.step([NORMAL] * 4)
    obs, rewards, terms, truncs, infos = venv.step([NORMAL, RAISE, NORMAL, NORMAL])
    assert list(infos["_error"]) == [False, True, False, False]
    assert infos["error"]["type"][1] == "RuntimeError"
    assert infos["error"]["message"][1] == "boom in step"
    # the remote traceback names the raising line; its source text only where the file exists (not in a container)
    assert 'support/envs.py", line' in infos["error"]["traceback"][1]
    assert list(truncs) == [False, True, False, False] and list(rewards) == [1.0, 0.0, 1.0, 1.0]
    np.testing.assert_array_equal(obs[[0, 2, 3], 0], [2, 2, 2])
    obs, rewards, *_ = venv.step([NORMAL] * 4)  # next step: env 1 is reset, the others go on
    np.testing.assert_array_equal(obs[:, 0], [3, 0, 3, 3])


def test_an_env_raising_in_reset_reports_it_and_is_rebuilt(make, probe, tmp_path, backend):
    if backend.name in ("docker", "remote"):
        pytest.skip("`fail_once` marks a file in the host's tmp_path, which containers and sandboxes do not see")
    venv = make(probe, 4)
    obs, infos = venv.reset(seed=0, options={"fail_once": str(tmp_path / "failed")})
    assert infos["_error"].sum() == 1
    k = int(np.flatnonzero(infos["_error"])[0])
    assert infos["error"]["type"][k] == "ValueError" and infos["error"]["message"][k] == "boom in reset"
    assert "boom in reset" in infos["error"]["traceback"][k]
    np.testing.assert_array_equal(obs[:, 1], [0, 1, 2, 3])  # every env reset with its seed
    assert venv.step([NORMAL] * 4)[1].tolist() == [1.0] * 4


def test_on_error_raise_raises_remote_error_with_the_remote_traceback(make, probe, tmp_path, backend):
    venv = make(probe, 4, on_error="raise")
    venv.reset(seed=0)
    with pytest.raises(rock_envs.RemoteError, match="RuntimeError in worker .*: boom in step") as caught:
        venv.step([NORMAL, RAISE, NORMAL, NORMAL])
    assert caught.value.type_name == "RuntimeError"
    assert 'support/envs.py", line' in caught.value.remote_traceback
    if backend.name in ("docker", "remote"):
        return  # `fail_once` below marks a file in the host's tmp_path, which containers and sandboxes do not see
    with pytest.raises(rock_envs.RemoteError, match="ValueError in worker .*: boom in reset"):
        venv.reset(seed=0, options={"fail_once": str(tmp_path / "failed")})
    obs, _ = venv.reset(seed=0)  # the workers are unharmed
    assert venv.step([NORMAL] * 4)[1].tolist() == [1.0] * 4


def test_a_worker_killed_mid_step_is_replaced_and_the_call_returns(make, probe, backend):
    # Env 0's step would sleep for 10 minutes: only detecting the death at once lets the call return
    # within its timeout (no wall-clock bound, which would depend on the machine's load). The local
    # backend steps inside `step_async` itself, so there the step may only be short.
    venv = make(probe, 4, delay=2.0 if backend.name == "local" else 600.0)
    venv.reset(seed=5)
    venv.step_async([SLOW, NORMAL, NORMAL, NORMAL])
    time.sleep(0.3)  # env 0 (worker 0) is now sleeping inside its step
    kill_worker(venv, 0)
    obs, rewards, terms, truncs, infos = venv.step_wait(timeout=60)
    assert list(infos["_worker_restarted"]) == [True, True, False, False]
    assert list(infos["_infra_error"]) == [True, True, False, False]  # the infra's fault, not the policy's
    assert list(infos["infra_error"]["phase"][:2]) == ["worker", "worker"]
    assert list(truncs) == [True, True, False, False]
    np.testing.assert_array_equal(obs[:, 0], [0, 0, 1, 1])  # envs 0 and 1 start a new episode
    np.testing.assert_array_equal(obs[:, 1], [5, 6, 7, 8])  # re-seeded with their seeds
    obs, rewards, *_ = venv.step([NORMAL] * 4)
    assert rewards.tolist() == [1.0] * 4
    np.testing.assert_array_equal(obs[:, 0], [1, 1, 2, 2])


def test_a_worker_killed_while_idle_is_replaced_on_the_next_call(make, probe):
    venv = make(probe, 4)
    venv.reset(seed=0)
    kill_worker(venv, 1)
    time.sleep(0.2)
    obs, rewards, terms, truncs, infos = venv.step([NORMAL] * 4)
    assert list(infos["_worker_restarted"]) == [False, False, True, True]
    assert venv.step([NORMAL] * 4)[1].tolist() == [1.0] * 4
    assert len(venv.get_attr("delay")) == 4


def test_a_call_past_its_timeout_names_the_envs_and_the_env_recovers(make, process_backend, probe):
    venv = make(probe, 4, delay=20.0)
    venv.reset(seed=0)
    venv.step_async([NORMAL, NORMAL, NORMAL, SLOW])
    with pytest.raises(
        rock_envs.WorkerTimeoutError,
        match=re.escape(
            "`step_wait`: no answer within the timeout from env(s) [2, 3]. Their workers ([1]) were restarted"
        ),
    ) as caught:
        venv.step_wait(timeout=0.5)
    assert caught.value.env_ids == [2, 3]  # env 3 is stuck; env 2 shares its worker and its reply
    assert isinstance(caught.value, TimeoutError)
    obs, _ = venv.reset(seed=0)
    np.testing.assert_array_equal(obs[:, 0], [0, 0, 0, 0])
    assert venv.step([NORMAL] * 4)[1].tolist() == [1.0] * 4


@pytest.mark.parametrize(
    "actions, message",
    [
        ([0, 1], "`step`: expected 3 actions (one per env), got 2."),
        (1, "`step`: expected a sequence of 3 actions, got a single int; pass one action per env, e.g. a list."),
        ([0, 1, 2], "`step`: action 2 is 2, outside Discrete(2) (expected 0 <= a < 2)."),
        ([0.5, 1, 0], "`step`: expected 3 integer actions for Discrete(2), got float64 with shape (3,)."),
    ],
)
def test_bad_actions_are_clear_errors_and_leave_the_workers_unharmed(make, actions, message):
    venv = make(CARTPOLE, 3, check_actions=True)
    venv.reset(seed=0)
    with pytest.raises(rock_envs.ActionError, match=re.escape(message)):
        venv.step(actions)
    assert venv.step([0, 1, 0])[1].tolist() == [1.0] * 3


def test_text_envs_reject_non_str_actions(make):
    venv = make(SOKOBAN, 2, check_actions=True)
    venv.reset(seed=0)
    with pytest.raises(
        rock_envs.ActionError, match=re.escape("`step`: text envs take str actions; action 1 is a int (3).")
    ):
        venv.step(["\\boxed{up}", 3])
    assert len(venv.step(["\\boxed{up}", "\\boxed{up}"])[0]) == 2


def test_calls_after_close_are_clear_errors(make):
    venv = make(CARTPOLE, 2)
    venv.reset(seed=0)
    venv.close()
    venv.close()  # twice is fine
    for call, args in [("step", ([0, 1],)), ("reset", ()), ("send", ([0, 1],)), ("get_attr", ("spec",))]:
        with pytest.raises(rock_envs.EnvClosedError, match=re.escape("after `close()`: this vector env is closed")):
            getattr(venv, call)(*args)
