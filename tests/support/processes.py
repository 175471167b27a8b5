"""The process census behind the leak checks, and `settle` to wait for processes to come and go.

Every server, zygote and agent this test session starts inherits ``ROCK_ENVS_TEST_SESSION`` (set
when this module is imported, by tests/conftest.py, before any of them starts), so the census counts
only ours, not those of another suite running on the same machine at the same time.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterator

SESSION_MARK = "ROCK_ENVS_TEST_SESSION=" + os.environ.setdefault("ROCK_ENVS_TEST_SESSION", os.urandom(8).hex())
AGENT_MARK = b"rock_envs.sandbox.agent"
WORKER_MARK = b"rock_envs.worker"


def _running(mark: bytes) -> Iterator[int]:
    """Pids whose command line holds `mark` (processes may exit meanwhile: those are skipped)."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    if mark in fh.read():
                        yield int(name)
            except OSError:
                pass


def agent_pids() -> set[int]:
    """Every process of this session started from the agent package (zygotes, launchers, pid-1 inits, agents)."""
    found = set()
    for pid in _running(AGENT_MARK):
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if SESSION_MARK.encode() in fh.read().split(b"\0"):
                    found.add(pid)
        except OSError:
            pass
    return found - {os.getpid()}


def worker_pids(runtime_dir: str, sandbox_id: str | None = None) -> set[int]:
    """Env workers running in a server's sandboxes (their working directory is under its runtime dir)."""
    where = os.path.join(runtime_dir, "sandboxes", sandbox_id or "")
    found = set()
    for pid in _running(WORKER_MARK):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(where):
                found.add(pid)
        except OSError:
            pass
    return found


def settle(check: Callable[[], object], timeout: float = 30.0, interval: float = 0.05) -> bool:
    """Poll `check()` until it is true (processes take a moment to exit); never a timed assertion."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def kill_worker(venv: Any, w: int) -> None:
    """SIGKILL worker `w` of a vector env: with a real `os.kill` of its pid where it has one."""
    import signal

    pid = venv.group.pid(w) if hasattr(venv.group, "pid") else None
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
    else:  # no process of its own (worker 0 of caller_worker=True is the caller)
        venv.group.kill(w)
