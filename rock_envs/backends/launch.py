"""Starting worker processes on this machine: each gets one end of a socketpair and serves on it.

- "forkserver" (default): a fork server (`python -m rock_envs.backends.launch`) imports gymnasium,
  GEM and the worker once, then forks a worker per request, in milliseconds. It is safe with threads
  and event loops in the caller, and never re-runs the caller's `__main__` (multiprocessing's own
  forkserver does, which breaks scripts without an `if __name__ == "__main__"` guard).
- "spawn": a fresh `python -m rock_envs.worker` per worker; slow to start (imports everything).
- "fork": `os.fork()` of the caller; fastest, but unsafe once the caller runs threads.

Workers die with their parent: the caller for spawn and fork, the fork server for forkserver, which
itself exits when the caller's control socket closes (the caller exited or died).
"""

from __future__ import annotations

import array
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from typing import Any

from rock_envs.backends.options import START_METHODS
from rock_envs.sandbox.agent.wire import recv_exactly

PRELOAD = ("rock_envs.worker.loop", "rock_envs.build", "gymnasium", "gem.envs")


def start_worker(method: str) -> tuple[socket.socket, int]:
    """Start one worker; returns (the caller's end of its socket, its pid)."""
    if method not in START_METHODS:
        raise ValueError(f"`make_vec(start_method=...)`: expected one of {START_METHODS}, got {method!r}.")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if method == "forkserver":
            pid = _fork_server().fork_worker(theirs)
        elif method == "spawn":
            proc = subprocess.Popen(
                [sys.executable, "-m", "rock_envs.worker", "--fd", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                start_new_session=False,
            )
            _reap_later(proc)
            pid = proc.pid
        else:
            pid = _fork_here(theirs, ours)
    finally:
        theirs.close()
    return ours, pid


def _fork_here(theirs: socket.socket, ours: socket.socket) -> int:
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            ours.close()
            _serve_fd(theirs.detach())
        finally:
            os._exit(0)
    threading.Thread(target=_waitpid_quietly, args=(pid,), daemon=True).start()
    return pid


def _serve_fd(fd: int, pdeathsig: bool = False) -> None:
    from multiprocessing.connection import Connection

    from rock_envs.worker.loop import die_with_parent, freeze_heap, serve

    die_with_parent(pdeathsig)
    freeze_heap()
    serve(Connection(fd))


def _waitpid_quietly(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _reap_later(proc: subprocess.Popen) -> None:
    threading.Thread(target=proc.wait, daemon=True).start()


# ---- the fork server --------------------------------------------------------------------------


class _ForkServerClient:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rock_envs.backends.launch", str(theirs.fileno())], pass_fds=[theirs.fileno()]
        )
        theirs.close()
        _reap_later(self.proc)
        self.control = ours
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def fork_worker(self, sock: socket.socket) -> int:
        with self.lock:
            self.control.sendmsg([b"F"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [sock.fileno()]))])
            try:
                data = recv_exactly(self.control, 4)
            except EOFError:
                raise ConnectionError("the rock-envs fork server exited") from None
        return struct.unpack(">i", data)[0]


_server: _ForkServerClient | None = None
_server_lock = threading.Lock()


def _fork_server() -> _ForkServerClient:
    with _server_lock:
        if _server is None or not _server.alive() or _server_pid != os.getpid():
            _set_server(_ForkServerClient())
        assert _server is not None
        return _server


_server_pid = -1


def _set_server(server: _ForkServerClient) -> None:
    global _server, _server_pid
    _server, _server_pid = server, os.getpid()


def _fork_server_main(control_fd: int) -> None:
    import importlib

    # No PDEATHSIG here: it fires when the *thread* that started us exits. The caller's death closes
    # the control socket instead, and then we exit, and our workers (PDEATHSIG on us) with us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    from rock_envs.worker.loop import freeze_heap  # preloaded above

    freeze_heap()  # before the forks: no worker's collections touch (and copy) the preloaded pages
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps finished workers
    control = socket.socket(fileno=control_fd)
    while True:
        try:
            msg, ancdata, _, _ = control.recvmsg(1, socket.CMSG_SPACE(4))
        except (ConnectionError, OSError):
            return
        if not msg:
            return  # the caller closed the control socket or exited
        fds = array.array("i")
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        pid = os.fork()
        if pid == 0:
            try:
                control.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _serve_fd(fds[0], pdeathsig=True)  # our only thread forked it: safe
            finally:
                os._exit(0)
        os.close(fds[0])
        control.sendall(struct.pack(">i", pid))


def _main(argv: list[str]) -> None:
    _fork_server_main(int(argv[0]))


if __name__ == "__main__":
    _main(sys.argv[1:])


__all__: list[Any] = ["start_worker"]
