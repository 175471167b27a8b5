"""Faults against a real server process: each one ends in a transparent rebuild (envs flagged
`worker_restarted` in info) or a clear error, never a hang, and leaves no sandbox or worker behind.

| fault                                 | behaviour                                                   |
|---------------------------------------|-------------------------------------------------------------|
| env worker killed mid-step            | rebuild: a new worker in the same sandbox                   |
| sandbox deleted mid-step              | rebuild: a new sandbox                                      |
| connection dropped, then re-opened    | rebuild: new workers in the same sandboxes                  |
| sandbox reaped by its TTL             | rebuild: new sandboxes                                      |
| server SIGKILLed and started again    | rebuild: new sandboxes on the new server                    |
| server gone for good                  | `RemoteBackendError` after `reconnect_timeout`              |
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import rock_envs
from rock_envs.backends.remote import RemoteBackendError
from tests.support.envs import SleepEnv
from tests.support.processes import settle, worker_pids

SLOW, FAST = 1.5, 0.0


@pytest.fixture
def sleepy() -> str:
    rock_envs.register("test:Sleep-v0", entry_point=SleepEnv, override=True)
    return "test:Sleep-v0"


def restarted(infos: dict, n: int) -> list[int]:
    mask = infos.get("_worker_restarted", np.zeros(n, dtype=bool))
    return [i for i in range(n) if mask[i]]


def drop_connection(venv) -> None:
    """Cut the WebSocket as a network failure would (no close handshake)."""
    group = venv.group
    group._loop.call_soon_threadsafe(group._mux.conn.transport.abort)
    assert settle(lambda: not group._mux.connected)


def step_all(venv, seconds: float):
    return venv.step(np.full(venv.num_envs, seconds))


def test_a_worker_killed_mid_step_is_rebuilt_in_the_same_sandbox(make_remote, remote_server, sleepy):
    venv = make_remote(sleepy, 4, num_workers=2)
    venv.reset(seed=0)
    sids = venv.group.sandbox_ids()
    (pid,) = worker_pids(remote_server.runtime_dir, sids[0])
    venv.step_async(np.full(4, SLOW))
    os.kill(pid, signal.SIGKILL)
    obs, rewards, terms, truncs, infos = venv.step_wait()
    assert restarted(infos, 4) == [0, 1] and truncs.tolist() == [True, True, False, False]
    assert obs[:2, 0].tolist() == [0.0, 1.0]  # re-seeded with their last seeds
    assert venv.group.sandbox_ids() == sids
    assert step_all(venv, FAST)[0][:, 0].tolist() == [1.0, 1.0, 2.0, 2.0]


def test_a_sandbox_deleted_mid_step_is_replaced(make_remote, remote_server, sleepy):
    venv = make_remote(sleepy, 4, num_workers=2)
    venv.reset(seed=0)
    sids = venv.group.sandbox_ids()
    venv.step_async(np.full(4, SLOW))
    venv.group.kill(1)  # DELETE /sandboxes/{sid}: its agent and worker are killed
    obs, rewards, terms, truncs, infos = venv.step_wait()
    assert restarted(infos, 4) == [2, 3]
    now = venv.group.sandbox_ids()
    assert now[0] == sids[0] and now[1] != sids[1] and sids[1] not in remote_server.sandboxes()


def test_a_dropped_connection_is_reopened_and_the_envs_rebuilt_in_their_sandboxes(make_remote, remote_server, sleepy):
    # More workers than the engine's restart budget per worker and call: a dropped connection takes
    # every worker at once, and each must still be rebuilt.
    venv = make_remote(sleepy, 6, num_workers=5)
    venv.reset(seed=0)
    sids = venv.group.sandbox_ids()
    drop_connection(venv)
    obs, rewards, terms, truncs, infos = step_all(venv, FAST)
    assert restarted(infos, 6) == [0, 1, 2, 3, 4, 5]
    assert venv.group.sandbox_ids() == sids
    assert step_all(venv, FAST)[0][:, 0].tolist() == [1.0] * 6
    assert settle(lambda: len(worker_pids(remote_server.runtime_dir)) == 5)  # the old workers ended with the connection


def test_sandboxes_reaped_by_their_ttl_are_replaced(make_remote, remote_server, sleepy):
    venv = make_remote(sleepy, 4, num_workers=2, ttl=1)
    venv.reset(seed=0)
    sids = venv.group.sandbox_ids()
    drop_connection(venv)  # an open channel holds its sandbox; once dropped, the TTL counts
    assert settle(lambda: not set(sids) & set(remote_server.sandboxes()), timeout=60)
    obs, rewards, terms, truncs, infos = step_all(venv, FAST)
    assert restarted(infos, 4) == [0, 1, 2, 3]
    assert not set(venv.group.sandbox_ids()) & set(sids)


def test_a_restarted_server_gets_new_sandboxes_and_the_envs_are_rebuilt(own_server, make_remote, sleepy):
    srv = own_server()
    venv = make_remote(sleepy, 4, srv=srv, num_workers=2)
    venv.reset(seed=0)
    sids = venv.group.sandbox_ids()
    srv.stop(signal.SIGKILL)  # its sandboxes die with it (their lifeline closes)
    assert settle(lambda: not worker_pids(srv.runtime_dir))
    srv.start()  # same port, token and runtime dir
    obs, rewards, terms, truncs, infos = step_all(venv, FAST)
    assert restarted(infos, 4) == [0, 1, 2, 3]
    assert set(srv.sandboxes()) == set(venv.group.sandbox_ids()) and not set(sids) & set(srv.sandboxes())
    venv.close()
    assert srv.sandboxes() == []


def test_a_server_gone_for_good_is_a_clear_error(own_server, make_remote, sleepy):
    srv = own_server()
    venv = make_remote(sleepy, 2, srv=srv, num_workers=1, reconnect_timeout=1.0)
    venv.reset(seed=0)
    srv.stop(signal.SIGKILL)
    with pytest.raises(RemoteBackendError, match="unreachable"):
        step_all(venv, FAST)
    venv.close()
    assert settle(lambda: not worker_pids(srv.runtime_dir))
