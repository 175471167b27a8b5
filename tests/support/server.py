"""A real sandbox server process on 127.0.0.1, free ports, and the sandbox runtimes under test."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

import httpx

from tests.support.paths import PYTHON, short_tmp

RUNTIMES = [r for r in os.environ.get("ROCK_ENVS_SANDBOX_RUNTIMES", "process,docker").split(",") if r]
"""The sandbox runtimes under test (``ROCK_ENVS_SANDBOX_RUNTIMES`` narrows them)."""
SERVE_RUNTIMES = ["--runtime", "docker"] if "docker" in RUNTIMES else []
"""The server arguments that offer every runtime under test (the process runtime is always offered)."""


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports on 127.0.0.1. All are held until all are picked: ports picked one
    after another, each released at once, may come back twice (Ray refuses a node whose components
    were given the same port)."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


@dataclass
class ServerProcess:
    """``python -m rock_envs.sandbox.server`` on 127.0.0.1 at a free port, with its own token and a
    short runtime dir; its stderr goes to ``<runtime_dir>/server.log`` (a file, not a pipe nobody
    reads, which could fill and block it). ``args`` go on its command line (``--runtime docker``,
    caps, extra tokens). ``stop`` and then ``start`` again restarts it on the same port, token and dir.
    """

    args: list[str] = field(default_factory=list)
    runtime_dir: str = field(default_factory=short_tmp)
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: "test-token-" + os.urandom(8).hex())
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def log(self) -> str:
        return os.path.join(self.runtime_dir, "server.log")

    def start(self) -> ServerProcess:
        cmd = [PYTHON, "-m", "rock_envs.sandbox.server", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--token", self.token, "--runtime-dir", self.runtime_dir, *self.args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                with open(self.log) as fh:
                    raise RuntimeError(
                        f"the server exited with {self.proc.returncode} ({self.log}): {fh.read()[-3000:]}"
                    )
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"the server did not come up within 60 s; see {self.log}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Send `sig` (SIGKILL: a crash) and wait for the process to end."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        self.proc = None

    def pid(self) -> int:
        assert self.proc is not None, "the server is not running"
        return self.proc.pid

    def sandboxes(self) -> list[str]:
        """The ids of the sandboxes this server holds now."""
        response = httpx.get(self.url + "/sandboxes", headers=self.headers, timeout=30)
        response.raise_for_status()
        return [s["id"] for s in response.json()["sandboxes"]]
