"""A framed channel to a process inside a sandbox (an env worker): ``send(payload)``, ``recv()``, ``request``.

A frame is a 4-byte big-endian length and that many payload bytes. Requests may be pipelined:
send several, then receive their replies in order. The sandbox never looks inside a frame.
"""

from __future__ import annotations

import asyncio
import socket
from abc import ABC, abstractmethod
from typing import Callable

from ...core.frames import MAX_FRAME, frame, read_frame_async  # noqa: F401 - MAX_FRAME: kept importable
from ..errors import CommandTimeoutError, SandboxClosedError, SandboxDiedError


class WorkerChannel(ABC):
    """One worker process in a sandbox. ``close()`` ends it (the worker sees end-of-stream)."""

    @abstractmethod
    async def send(self, payload: bytes) -> None: ...

    @abstractmethod
    async def _recv(self) -> bytes: ...

    async def recv(self, timeout: float | None = 60.0) -> bytes:
        """The next reply frame's payload; :class:`CommandTimeoutError` after ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self._recv(), timeout)
        except asyncio.TimeoutError:
            raise CommandTimeoutError(
                f"`WorkerChannel.recv`: no frame from the worker within {timeout} s; "
                "raise `timeout` or check that the worker got a request."
            ) from None

    async def request(self, payload: bytes, timeout: float | None = 60.0) -> bytes:
        await self.send(payload)
        return await self.recv(timeout)

    @abstractmethod
    async def aclose(self) -> None: ...

    async def __aenter__(self) -> WorkerChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class SocketChannel(WorkerChannel):
    """Embedded mode: the worker's own socket, handed over by the agent."""

    def __init__(self, sock: socket.socket, on_close: Callable[[], None] | None = None):
        self.sock = sock
        self.on_close = on_close  # called once, by the first `aclose`
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(sock=self.sock, limit=1 << 20)
        assert self.reader is not None
        return self.reader, self.writer

    async def send(self, payload: bytes) -> None:
        _, writer = await self._open()
        if writer.is_closing():
            raise SandboxClosedError("`WorkerChannel.send`: the channel is closed; open a new worker.")
        writer.write(frame(payload, "`WorkerChannel.send`"))
        try:
            await writer.drain()
        except ConnectionError as exc:
            raise SandboxDiedError(f"`WorkerChannel.send`: the worker went away ({exc}).") from exc

    async def _recv(self) -> bytes:
        reader, _ = await self._open()
        try:
            return await read_frame_async(reader, "`WorkerChannel.recv`")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise SandboxDiedError(
                "`WorkerChannel.recv`: the worker closed its end (it exited or was killed)."
            ) from exc

    async def aclose(self) -> None:
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close()
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except ConnectionError:
                pass
        else:
            self.sock.close()
