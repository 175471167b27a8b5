"""A warm, single-threaded parent that forks new sandboxes, so a sandbox costs a fork, not a Python start.

The manager starts it once with ``--fd N``, one end of a ``SOCK_SEQPACKET`` socketpair. Each request
is one packet: the JSON spec of :func:`.boot.launch`, with the write end of a pipe attached as a
file descriptor (``SCM_RIGHTS``); the reply is one packet ``{"pid": launcher_pid}``. The new agent
writes ``ready`` (or ``error ...``) on that pipe once it listens. The zygote exits when the
manager's end closes. Standard library only; nothing here may start a thread or an event loop.
"""

from __future__ import annotations

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


def main(argv: list[str] | None = None) -> None:
    import asyncio  # noqa: F401  (warm: the agent imports it after the fork)

    args = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(args[args.index("--fd") + 1]))
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
            pid = os.fork()
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
