"""Sandbox fixtures: a real server process on 127.0.0.1, and ``sb`` parametrized over mode x runtime.

Runtimes: ``process`` and ``docker`` (``ROCK_ENVS_SANDBOX_RUNTIMES`` narrows them); docker tests carry
the ``docker`` marker and skip with one loud line when no engine answers (see tests/docker/docker_support.py).
No test leaves processes behind: the session ends by checking that no agent is still running.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from typing import Any, AsyncIterator, Iterator

import pytest
from sandbox_helpers import MODES, RUNTIMES, Server, agent_pids, short_tmp, start_server

from rock_envs.sandbox import Sandbox, SandboxConfig

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docker"))
import docker_support  # noqa: E402


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    srv = start_server()
    yield srv
    srv.kill(signal.SIGTERM)
    if os.path.exists(srv.log):
        shutil.copy(srv.log, os.path.join(tempfile.gettempdir(), "rock-envs-test-server.log"))
    shutil.rmtree(srv.runtime_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_dir() -> Iterator[str]:
    path = short_tmp()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def no_leftover_processes() -> Iterator[None]:
    before = agent_pids()
    yield
    deadline = time.monotonic() + 10
    while agent_pids() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    left = agent_pids() - before
    assert not left, f"sandbox processes left behind: {sorted(left)}"


def runtime_params() -> list[Any]:
    return [pytest.param(r, marks=[pytest.mark.docker] if r == "docker" else []) for r in RUNTIMES]


@pytest.fixture(params=runtime_params())
def runtime(request: pytest.FixtureRequest) -> str:
    if request.param == "docker":
        docker_support.test_image()
    return str(request.param)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def config(mode: str, runtime: str, request: pytest.FixtureRequest, embedded_dir: str) -> SandboxConfig:
    extra: dict[str, Any] = {"image": docker_support.test_image()} if runtime == "docker" else {}
    if mode == "server":
        srv: Server = request.getfixturevalue("server")
        return SandboxConfig(runtime=runtime, base_url=srv.url, token=srv.token, **extra)  # type: ignore[arg-type]
    return SandboxConfig(runtime=runtime, runtime_dir=embedded_dir, **extra)  # type: ignore[arg-type]


@pytest.fixture
async def sb(config: SandboxConfig) -> AsyncIterator[Sandbox]:
    async with Sandbox(config) as sandbox:
        yield sandbox
