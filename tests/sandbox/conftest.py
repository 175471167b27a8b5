"""Sandbox fixtures: a real server process on 127.0.0.1, and ``sb`` parametrized over mode x runtime.

Runtimes: ``process`` and ``docker`` (``ROCK_ENVS_SANDBOX_RUNTIMES`` narrows them); docker tests carry
the ``docker`` marker and skip with one loud line when no engine answers (see tests/docker/docker_support.py).
No test leaves processes behind: the session ends by checking that no agent is still running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterator

import httpx
import pytest

from rock_envs.sandbox import Sandbox, SandboxConfig

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docker"))
import docker_support  # noqa: E402

PYTHON = sys.executable
RUNTIMES = [r for r in os.environ.get("ROCK_ENVS_SANDBOX_RUNTIMES", "process,docker").split(",") if r]
MODES = ["embedded", "server"]
AGENT_MARK = "rock_envs.sandbox.agent"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def short_tmp(prefix: str = "re-") -> str:
    """Short on purpose: unix socket paths must stay under 108 bytes."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def agent_pids() -> set[int]:
    """Every process started from the agent package (zygotes, launchers, pid-1 inits, agents)."""
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    if AGENT_MARK.encode() in fh.read():
                        found.add(int(name))
            except OSError:
                pass
    return found - {os.getpid()}


@dataclass
class Server:
    url: str
    token: str
    runtime_dir: str
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [PYTHON, "-m", "rock_envs.sandbox.server", "--host", "127.0.0.1", "--port", str(self.port),
               "--token", self.token, "--runtime-dir", self.runtime_dir]  # fmt: skip
        if "docker" in RUNTIMES:
            cmd += ["--runtime", "docker"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("server did not come up within 60 s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def start_server(runtime_dir: str | None = None) -> Server:
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", "test-token-" + os.urandom(8).hex(), runtime_dir or short_tmp(), port)
    server.start()
    return server


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
