"""Remote backend fixtures: a real server process on 127.0.0.1 and a leak census around every test."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from remote_support import RemoteServer, agent_pids, settle, worker_pids  # noqa: E402

import rock_envs  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def no_leftover_processes() -> Iterator[None]:
    before = agent_pids()
    yield
    assert settle(lambda: not agent_pids() - before), f"sandbox agents left behind: {sorted(agent_pids() - before)}"


@pytest.fixture(scope="session")
def server() -> Iterator[RemoteServer]:
    srv = RemoteServer().start()
    yield srv
    srv.stop()
    shutil.rmtree(srv.runtime_dir, ignore_errors=True)


@pytest.fixture
def own_server(request: pytest.FixtureRequest) -> Iterator[Callable[..., RemoteServer]]:
    """`own_server(*args)`: a server of this test alone (to kill, restart or cap), stopped afterwards."""
    made: list[RemoteServer] = []

    def _start(*args: str) -> RemoteServer:
        made.append(RemoteServer(list(args)).start())
        return made[-1]

    yield _start
    for srv in made:
        srv.stop()
        assert settle(lambda srv=srv: not worker_pids(srv.runtime_dir)), "env workers outlived their server"
        shutil.rmtree(srv.runtime_dir, ignore_errors=True)


@pytest.fixture
def make(server: RemoteServer) -> Iterator[Callable[..., Any]]:
    """`make(env_id, num_envs, **kwargs)`: a remote vector env on the shared server; afterwards, no
    vector env may leave a sandbox or a worker behind on it."""
    before = set(server.sandboxes())
    made: list[Any] = []

    def _make(env_id: Any, num_envs: int, srv: RemoteServer | None = None, **kwargs: Any) -> Any:
        srv = srv or server
        venv = rock_envs.make_vec(env_id, num_envs, backend="remote", url=srv.url, token=srv.token, **kwargs)
        made.append(venv)
        return venv

    yield _make
    for venv in made:
        venv.close()
    assert set(server.sandboxes()) == before, "sandboxes left on the server"
    assert settle(lambda: not worker_pids(server.runtime_dir)), "env workers left in the server's sandboxes"
