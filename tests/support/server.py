"""Helpers for the sandbox tests: a real server process, short temp dirs, agent process census."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import httpx

PYTHON = sys.executable
RUNTIMES = [r for r in os.environ.get("ROCK_ENVS_SANDBOX_RUNTIMES", "process,docker").split(",") if r]
MODES = ["embedded", "server"]
AGENT_MARK = "rock_envs.sandbox.agent"
# Inherited by every server, zygote and agent this test session starts, so the census below counts
# only ours, not those of another suite running on the same machine at the same time.
SESSION_MARK = "ROCK_ENVS_TEST_SESSION=" + os.environ.setdefault("ROCK_ENVS_TEST_SESSION", os.urandom(8).hex())


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
                    if AGENT_MARK.encode() not in fh.read():
                        continue
                with open(f"/proc/{name}/environ", "rb") as fh:
                    if SESSION_MARK.encode() in fh.read().split(b"\0"):
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
    log: str = ""

    def start(self) -> None:
        cmd = [
            PYTHON,
            "-m",
            "rock_envs.sandbox.server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--token",
            self.token,
            "--runtime-dir",
            self.runtime_dir,
        ]
        if "docker" in RUNTIMES:
            cmd += ["--runtime", "docker"]
        self.log = os.path.join(self.runtime_dir, "server.log")
        with open(self.log, "ab") as log:  # a file, not a pipe nobody reads (which could fill and block it)
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                with open(self.log) as fh:
                    raise RuntimeError(f"server exited: {fh.read()[-3000:]}")
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
        self.proc = None

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def start_server(runtime_dir: str | None = None) -> Server:
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", "test-token-" + os.urandom(8).hex(), runtime_dir or short_tmp(), port)
    server.start()
    return server
