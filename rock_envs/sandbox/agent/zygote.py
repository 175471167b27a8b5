"""A warm, single-threaded parent that forks new sandboxes, so a sandbox costs a fork, not a Python start.

The manager starts it once with ``--fd N``, one end of a ``SOCK_SEQPACKET`` socketpair. Each request
is one packet: the JSON spec of :func:`.boot.launch`, with the write end of a pipe attached as a
file descriptor (``SCM_RIGHTS``); the reply is one packet ``{"pid": launcher_pid}``. The new agent
writes ``ready`` (or ``error ...``) on that pipe once it listens. The zygote exits when the
manager's end closes. Standard library only; nothing here may start a thread or an event loop.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import socket
import sys

from . import boot, files, isolate, procs, service, shell, wire  # noqa: F401  (warm the imports)


def _reap(*_: object) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class _PidNamespaces:
    """Forks children as pid 1 of a fresh pid namespace each: ``unshare(CLONE_NEWPID)`` moves only
    where the next child goes, and ``setns`` back to our own namespace undoes it after the fork. A
    sandbox then needs no launcher process in the host's namespace (one process fewer per sandbox).
    Where that is refused, the child makes its namespace itself, under a launcher (see :mod:`.boot`)."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        try:
            self.own: int | None = os.open("/proc/self/ns/pid", os.O_RDONLY)
        except OSError:
            self.own = None

    def fork(self, new_namespace: bool) -> int:
        if not new_namespace or self.own is None or self.libc.unshare(boot.CLONE_NEWPID) != 0:
            return os.fork()
        try:
            return os.fork()
        finally:
            if os.getpid() != 1 and self.libc.setns(self.own, boot.CLONE_NEWPID) != 0:
                os._exit(71)  # every later sandbox would land in this one's namespace: better to restart


def main(argv: list[str] | None = None) -> None:
    import asyncio  # noqa: F401  (warm: the agent imports it after the fork)

    args = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(args[args.index("--fd") + 1]))
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    forker = _PidNamespaces()
    # Every object so far is shared with the children; a garbage collection in a child would write
    # to each one's header and copy its page. Frozen objects are never scanned, so they stay shared.
    gc.freeze()
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, 1)
        except InterruptedError:
            continue
        if not data:
            os._exit(0)
        try:
            spec = json.loads(data)
            spec["ready_fd"] = fds[0] if fds else None
            pid = forker.fork(bool(spec.get("namespaces")))
        except Exception as exc:  # a bad packet: answer, never die
            sock.send(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
            for fd in fds:
                os.close(fd)
            continue
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            sock.close()
            boot.launch(spec)
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"pid": pid}).encode())
