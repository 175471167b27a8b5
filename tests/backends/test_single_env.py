"""`rock_envs.make(id, backend=...)` on every backend: one env off this process, with the face and the
trajectories of a local one, and nothing of it left running after `close()`."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import psutil
import pytest

import rock_envs
from tests.support import docker_support
from tests.support.backends import Backend
from tests.support.envs import CARTPOLE, MOVES, SOKOBAN
from tests.support.processes import settle, worker_pids


def _in_process(backend: Backend) -> bool:
    """One env on `backend` lives in this process: the local backend's, or worker 0 in the caller."""
    return backend.name == "local" or backend.variant == "caller"


def _census(env: Any, backend: Backend, request: pytest.FixtureRequest) -> Callable[[], list[object]]:
    """What of the open `env` runs off this process (its worker's pid, its container, its sandbox and
    the worker in it), as a census to take again after `close()`."""
    if _in_process(backend):
        return lambda: []  # it lives in this process (one env: worker 0, the caller's own)
    group = env.vector_env.group
    if backend.name == "subprocess":
        pid = group.pid(0)
        return lambda: [pid] if psutil.pid_exists(pid) else []  # a zombie counts: close() must reap it
    where = group.describe(0)
    if backend.name == "ray":
        return lambda: [where["pid"]] if psutil.pid_exists(where["pid"]) else []  # the actor's process
    if backend.name == "docker":
        return lambda: [c.id for c in docker_support.containers() if c.id == where["container"]]
    assert backend.name == "remote", f"no census for the {backend.name} backend"
    srv = request.getfixturevalue("remote_server")
    sid = where["sandbox"]
    return lambda: [s for s in srv.sandboxes() if s == sid] + sorted(worker_pids(srv.runtime_dir, sid))


def test_text_env_matches_the_local_one(backend: Backend, request: pytest.FixtureRequest) -> None:
    local = rock_envs.make(SOKOBAN)
    with rock_envs.make(SOKOBAN, backend=backend.name, **backend.kwargs) as env:
        assert env.spec.id == SOKOBAN
        obs, info = env.reset(seed=42)
        assert (obs, info) == local.reset(seed=42)
        for action in ["\\boxed{up}", "\\boxed{left}", "\\boxed{down}"]:
            assert env.step(action) == local.step(action)
        assert env.sample_random_action() in MOVES
        running = _census(env, backend, request)
        assert _in_process(backend) or running(), "the census finds nothing of the open env"
    assert settle(lambda: not running()), f"left running after close(): {running()}"


def test_array_env_matches_the_local_one(backend: Backend, request: pytest.FixtureRequest) -> None:
    local = rock_envs.make(CARTPOLE)
    with rock_envs.make(CARTPOLE, backend=backend.name, **backend.kwargs) as env:
        np.testing.assert_array_equal(env.reset(seed=1)[0], local.reset(seed=1)[0])
        for action in [0, 1, 1, 0]:
            got, want = env.step(action), local.step(action)
            np.testing.assert_array_equal(got[0], want[0])
            assert got[1:4] == want[1:4]
        running = _census(env, backend, request)
        assert _in_process(backend) or running(), "the census finds nothing of the open env"
    assert settle(lambda: not running()), f"left running after close(): {running()}"


def test_vector_only_keywords_are_a_clear_error_for_one_env():

    with pytest.raises(rock_envs.EnvArgumentError, match=r"\['num_workers'\] cannot be set for one env"):
        rock_envs.make("CartPole-v1", backend="subprocess", num_workers=2)


@pytest.mark.parametrize("mode", ["auto", "replay"])
def test_snapshot_and_restore_continue_as_the_original(backend: Backend, mode: str) -> None:
    with rock_envs.make(SOKOBAN, backend=backend.name, snapshot_mode=mode, **backend.kwargs) as env:
        env.reset(seed=8)
        env.step(MOVES[1])
        snapshot = env.snapshot()
        assert (snapshot.env_id, snapshot.mode) == (SOKOBAN, "pickle" if mode == "auto" else "replay")
        original = [(env.step(a), env.sample_random_action()) for a in MOVES * 2]
        env.restore(snapshot)
        assert [(env.step(a), env.sample_random_action()) for a in MOVES * 2] == original
    with pytest.raises(rock_envs.EnvClosedError, match="`restore`"):
        env.restore(snapshot)
    local = rock_envs.make(SOKOBAN)  # a snapshot from any backend restores into a local env too
    local.restore(snapshot)
    assert [(local.step(a), local.sample_random_action()) for a in MOVES * 2] == original
