"""The remote backend's fixtures: vector envs on the session's server, and servers of a test's own."""

from __future__ import annotations

import shutil
from typing import Any, Callable, Iterator

import pytest

import rock_envs
from tests.support.processes import settle, worker_pids
from tests.support.server import ServerProcess


@pytest.fixture
def own_server() -> Iterator[Callable[..., ServerProcess]]:
    """`own_server(*args)`: a server of this test alone (to kill, restart or cap), stopped afterwards."""
    made: list[ServerProcess] = []

    def _start(*args: str) -> ServerProcess:
        made.append(ServerProcess(list(args)).start())
        return made[-1]

    yield _start
    for srv in made:
        srv.stop()
        assert settle(lambda srv=srv: not worker_pids(srv.runtime_dir)), "env workers outlived their server"
        shutil.rmtree(srv.runtime_dir, ignore_errors=True)


@pytest.fixture
def make_remote(remote_server: ServerProcess) -> Iterator[Callable[..., Any]]:
    """`make_remote(env_id, num_envs, srv=None, **kwargs)`: a remote vector env on the shared server
    (or on `srv`); afterwards, no vector env may leave a sandbox or a worker behind on the shared one."""
    before = set(remote_server.sandboxes())
    made: list[Any] = []

    def _make(env_id: Any, num_envs: int, srv: ServerProcess | None = None, **kwargs: Any) -> Any:
        srv = srv or remote_server
        venv = rock_envs.make_vec(env_id, num_envs, backend="remote", url=srv.url, token=srv.token, **kwargs)
        made.append(venv)
        return venv

    yield _make
    for venv in made:
        venv.close()
    assert set(remote_server.sandboxes()) == before, "sandboxes left on the server"
    assert settle(lambda: not worker_pids(remote_server.runtime_dir)), "env workers left in the server's sandboxes"
