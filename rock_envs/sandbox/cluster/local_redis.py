"""``LocalRedis``: Debian's ``redis-server`` on 127.0.0.1 at a free port, in its own temp dir, for one
machine: the test suite, ``benchmarks.cluster``, or trying the control/data split by hand.

``./run test`` installs the package (``scripts/redis.sh``) where apt-get can; where it is missing,
:func:`redis_problem` says why (the tests then skip with one loud line, or fail under ``CI``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_problem() -> str | None:
    if not os.access(REDIS_SERVER, os.X_OK):
        return f"{REDIS_SERVER} is missing: `apt-get install -y redis-server` (./run test does it where apt-get can)"
    return None


@dataclass
class LocalRedis:
    """One redis-server: no persistence, no other listener, its files in ``dir`` (removed by ``stop``)."""

    port: int = field(default_factory=free_port)
    dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="rock-envs-redis-"))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> LocalRedis:
        cmd = [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir]
        cmd += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", os.path.join(self.dir, "log")]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; see {self.dir}/log")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on 127.0.0.1:{self.port} within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
