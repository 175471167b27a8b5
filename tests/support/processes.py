"""A real sandbox server process on 127.0.0.1 for the remote backend's tests, and census helpers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import httpx

SESSION_MARK = "ROCK_ENVS_TEST_SESSION=" + os.environ.setdefault("ROCK_ENVS_TEST_SESSION", os.urandom(8).hex())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RemoteServer:
    """``python -m rock_envs.sandbox.server`` on a free port; ``restart`` keeps port, token and dir."""

    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: "remote-test-" + os.urandom(8).hex())
    runtime_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="rr-", dir="/tmp"))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self) -> RemoteServer:
        cmd = [
            sys.executable,
            "-m",
            "rock_envs.sandbox.server",
            "--port",
            str(self.port),
            "--token",
            self.token,
            "--runtime-dir",
            self.runtime_dir,
            *self.args,
        ]
        with open(os.path.join(self.runtime_dir, "server.log"), "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}; see {self.runtime_dir}/server.log")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the server did not come up within 60 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        self.proc = None

    def sandboxes(self) -> list[str]:
        response = httpx.get(self.url + "/sandboxes", headers=self.headers, timeout=30)
        response.raise_for_status()
        return [s["id"] for s in response.json()["sandboxes"]]


def worker_pids(runtime_dir: str, sandbox_id: str | None = None) -> set[int]:
    """Env workers running in this server's sandboxes (their working directory is under its runtime dir)."""
    where = os.path.join(runtime_dir, "sandboxes", sandbox_id or "")
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    if b"rock_envs.worker" not in fh.read():
                        continue
                if os.readlink(f"/proc/{name}/cwd").startswith(where):
                    found.add(int(name))
            except OSError:
                pass
    return found


def agent_pids() -> set[int]:
    """Sandbox agents (and their launchers) started by this test session."""
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    if b"rock_envs.sandbox.agent" not in fh.read():
                        continue
                with open(f"/proc/{name}/environ", "rb") as fh:
                    if SESSION_MARK.encode() in fh.read().split(b"\0"):
                        found.add(int(name))
            except OSError:
                pass
    return found


def settle(check, timeout: float = 30.0) -> bool:
    """Poll `check()` until it is true (processes take a moment to exit); never a timed assertion."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


SOKOBAN = "game:Sokoban-v0-easy"
MOVES = ["\\boxed{up}", "\\boxed{down}", "\\boxed{left}", "\\boxed{right}"]
