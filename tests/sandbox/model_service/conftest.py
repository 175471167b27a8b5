"""Agentic-loop fixtures: a real server process on 127.0.0.1, embedded managers, an upstream stand-in.

``config`` is parametrized over embedded and server mode (process runtime; docker tests ask for it
themselves). Programs run inside sandboxes with this interpreter, which has ``openai`` installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from typing import Any, AsyncIterator, Callable, Iterator

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sandbox"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "docker"))

import docker_support  # noqa: E402
from sandbox_helpers import Server, agent_pids, short_tmp, start_server  # noqa: E402

from rock_envs.sandbox import SandboxConfig  # noqa: E402


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    srv = start_server()
    yield srv
    srv.kill(signal.SIGTERM)
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


def pytest_terminal_summary(terminalreporter: Any) -> None:
    docker_conftest = os.path.join(os.path.dirname(HERE), "docker", "conftest.py")
    loaded = {getattr(p, "__file__", None) for p in terminalreporter.config.pluginmanager.get_plugins()}
    if docker_conftest not in loaded:  # else tests/docker/conftest.py prints the same line
        for why in sorted(docker_support.SKIPPED):
            terminalreporter.write_line(f"ROCK-ENVS DOCKER TESTS SKIPPED: {why}", red=True, bold=True)


@pytest.fixture(params=["embedded", "server"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_config(mode: str, request: pytest.FixtureRequest, embedded_dir: str) -> Callable[..., SandboxConfig]:
    def make(**fields: Any) -> SandboxConfig:
        fields.setdefault("model_service", "trainer")
        if mode == "server":
            srv: Server = request.getfixturevalue("server")
            return SandboxConfig(base_url=srv.url, token=srv.token, **fields)
        return SandboxConfig(runtime_dir=embedded_dir, **fields)

    return make


@pytest.fixture
async def upstream() -> AsyncIterator[Any]:
    """An OpenAI-compatible stand-in on 127.0.0.1 (what proxy mode forwards to)."""
    from upstream_stub import Upstream

    stub = Upstream()
    stub.start()
    yield stub
    stub.stop()
