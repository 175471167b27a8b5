"""Workers reached over one framed socket each: what the subprocess and docker backends share.

A subclass starts its workers its own way and hands each connected socket to `_attach`; sending,
waiting on every socket at once with one `poll`, noticing a closed socket as `WorkerGone`, and
closing are done here. Subclasses may say how a worker died (`_gone_reason`) and post-process a
reply (`_decode`, e.g. to read observations from shared memory).
"""

from __future__ import annotations

import select
import socket
from multiprocessing.connection import Connection

from rock_envs.backends.base import WorkerGone, WorkerGroup
from rock_envs.worker.protocol import Close, Reply, Request, decode, encode


class SocketWorkers(WorkerGroup):
    def __init__(self, num_workers: int):
        super().__init__(num_workers)
        self._conns: list[Connection | None] = [None] * num_workers
        self._poll = select.poll()
        self._fd_worker: dict[int, int] = {}

    def _attach(self, w: int, sock: socket.socket) -> None:
        sock.setblocking(True)
        conn = Connection(sock.detach())
        self._conns[w], self._gone[w] = conn, False
        self._poll.register(conn.fileno(), select.POLLIN)
        self._fd_worker[conn.fileno()] = w

    def send(self, w: int, request: Request) -> None:
        conn = self._conns[w]
        if self._gone[w] or conn is None:
            return  # its death was (or will be) reported by wait(); the engine restarts it
        try:
            conn.send_bytes(encode(request))
        except OSError:
            pass  # wait() sees the closed socket and reports the death

    def wait(self, timeout: float | None) -> list[tuple[int, Reply | WorkerGone]]:
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        return self._readable(self._poll.poll(ms))

    def _readable(self, events: list[tuple[int, int]]) -> list[tuple[int, Reply | WorkerGone]]:
        """One message from each worker whose socket `poll` found readable (more wait their turn)."""
        out: list[tuple[int, Reply | WorkerGone]] = []
        for fd, _ in events:
            w = self._fd_worker.get(fd)
            if w is not None and not self._gone[w]:
                out.append((w, self._receive(w)))
        return out

    def _receive(self, w: int) -> Reply | WorkerGone:
        """The next message of worker `w` (blocking until it is whole), or its death."""
        conn = self._conns[w]
        assert conn is not None
        try:
            return self._decode(w, conn.recv_bytes())
        except (EOFError, OSError):
            self._gone[w] = True
            self._forget(conn)
            return WorkerGone(self._gone_reason(w))

    def _decode(self, w: int, data: bytes) -> Reply:
        return decode(data)  # type: ignore[return-value]

    def _gone_reason(self, w: int) -> str:
        return f"worker {w} went away (its socket closed)"

    def _forget(self, conn: Connection) -> None:
        try:
            self._poll.unregister(conn.fileno())
        except (KeyError, OSError, ValueError):
            pass
        self._fd_worker.pop(conn.fileno(), None)

    def _drop(self, w: int) -> None:
        """Close worker `w`'s socket: the worker sees end-of-stream and exits."""
        conn = self._conns[w]
        if conn is not None:
            self._forget(conn)
            conn.close()
            self._conns[w] = None

    def _close_workers(self, timeout: float = 2.0) -> None:
        """Ask every worker to close its envs (all at once), give each `timeout` to answer, then drop it."""
        for w in range(self.num_workers):
            self.send(w, Close())
        for w in range(self.num_workers):
            conn = self._conns[w]
            if conn is not None and not self._gone[w]:
                try:
                    while conn.poll(timeout):
                        conn.recv_bytes()  # the Close reply, then EOF
                except (EOFError, OSError):
                    pass
            self._drop(w)
