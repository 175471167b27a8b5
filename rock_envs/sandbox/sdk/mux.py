"""Client side of the server's ``/workers`` WebSocket: many worker channels over one connection.

Open one :class:`WorkerMux` per client and call :meth:`WorkerMux.open` for each worker in any
sandbox of that server; each returns a :class:`WorkerChannel`. See ``server/workers.py`` for the
message format.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any, Callable, Optional

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ...core.frames import U32
from ..errors import (
    AuthenticationError,
    SandboxClosedError,
    SandboxDiedError,
    SandboxError,
    ServerUnreachableError,
    from_wire,
)
from .worker import WorkerChannel

_CLOSED = object()


Deliver = Callable[[Optional[bytes]], None]
"""Where a channel's frames go instead of its own queue: each frame, then ``None`` once it closed."""


class MuxChannel(WorkerChannel):
    def __init__(self, mux: WorkerMux, cid: int, deliver: Deliver | None = None):
        self.mux, self.cid, self.deliver = mux, cid, deliver
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.closed_reason: str | None = None
        self.prefix = U32.pack(cid)

    async def send(self, payload: bytes) -> None:
        if self.closed_reason is not None:
            raise SandboxClosedError(f"`WorkerChannel.send`: channel closed ({self.closed_reason}); open a new worker.")
        try:
            await self.mux.ws().send(self.prefix + payload)
        except ConnectionClosed as exc:
            raise SandboxDiedError(f"`WorkerChannel.send`: the connection to the server closed ({exc}).") from exc

    async def _recv(self) -> bytes:
        item = await self.inbox.get()
        if item is _CLOSED:
            self.inbox.put_nowait(_CLOSED)
            raise SandboxDiedError(f"`WorkerChannel.recv`: the worker's channel closed ({self.closed_reason}).")
        return item

    def _push(self, frame: bytes) -> None:
        if self.deliver is not None:
            self.deliver(frame)
        else:
            self.inbox.put_nowait(frame)

    def _close(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
            if self.deliver is not None:
                self.deliver(None)
            else:
                self.inbox.put_nowait(_CLOSED)

    async def aclose(self) -> None:
        if self.closed_reason is None:
            self._close("closed by client")
            self.mux.channels.pop(self.cid, None)
            try:
                await self.mux.ws().send(json.dumps({"op": "close", "channel": self.cid}))
            except (ConnectionClosed, SandboxError):
                pass


class WorkerMux:
    def __init__(self, base_url: str, headers: dict[str, str]):
        self.url = base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/workers"
        self.headers = headers
        self.conn: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.channels: dict[int, MuxChannel] = {}
        self.pending: dict[int, asyncio.Future[None]] = {}
        self.ids = itertools.count(1)
        self.lock = asyncio.Lock()

    def ws(self) -> ClientConnection:
        if self.conn is None:
            raise SandboxClosedError("`WorkerMux`: not connected.")
        return self.conn

    @property
    def connected(self) -> bool:
        """Whether the WebSocket is up (it was opened and has not closed since)."""
        return self.reader is not None and not self.reader.done()

    async def connect(self) -> None:
        """Open the WebSocket if it is not open; every `open` calls this first."""
        async with self.lock:
            if self.conn is not None and self.connected:
                return
            self.conn = None  # never opened, or it closed (its channels were told): open a new one
            try:
                self.conn = await connect(self.url, additional_headers=self.headers, max_size=None, compression=None)
            except InvalidStatus as exc:
                raise AuthenticationError(
                    f"`open_worker`: the server refused the WebSocket ({exc}); check the token."
                ) from exc
            except OSError as exc:
                raise ServerUnreachableError(f"`open_worker`: cannot reach {self.url} ({exc}).") from exc
            self.reader = asyncio.create_task(self._read())

    async def open(
        self,
        sandbox_id: str,
        argv: list[str],
        env: dict[str, str] | None,
        timeout: float = 60.0,
        deliver: Deliver | None = None,
    ) -> MuxChannel:
        """A worker in `sandbox_id`. With `deliver`, its frames go there (from the event loop's thread)
        instead of to `recv()`: a caller multiplexing many workers reads them from one place."""
        await self.connect()
        cid = next(self.ids)
        channel = MuxChannel(self, cid, deliver)
        self.channels[cid] = channel
        ready = asyncio.get_running_loop().create_future()
        self.pending[cid] = ready
        await self.ws().send(
            json.dumps({"op": "open", "channel": cid, "sandbox_id": sandbox_id, "argv": argv, "env": env})
        )
        try:
            await asyncio.wait_for(ready, timeout)
        except BaseException:
            self.channels.pop(cid, None)
            raise
        finally:
            self.pending.pop(cid, None)
        return channel

    async def _read(self) -> None:
        reason = "the connection closed"
        try:
            async for message in self.ws():
                if isinstance(message, bytes):
                    (cid,) = U32.unpack_from(message)
                    channel = self.channels.get(cid)
                    if channel is not None:
                        channel._push(message[4:])
                    continue
                msg = json.loads(message)
                cid = msg.get("channel")
                fut = self.pending.get(cid) if isinstance(cid, int) else None
                if msg.get("op") == "opened" and fut is not None and not fut.done():
                    fut.set_result(None)
                elif msg.get("op") == "error" and fut is not None and not fut.done():
                    fut.set_exception(from_wire(msg.get("type", ""), msg.get("message", "")))
                elif msg.get("op") in ("closed", "error") and isinstance(cid, int) and cid in self.channels:
                    self.channels.pop(cid)._close(msg.get("reason") or msg.get("message") or "closed")
        except ConnectionClosed as exc:
            reason = f"the connection closed ({exc})"
        finally:
            for channel in list(self.channels.values()):
                channel._close(reason)
            self.channels.clear()
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(SandboxDiedError(f"`open_worker`: {reason}."))

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
        if self.reader is not None:
            try:
                await self.reader
            except BaseException:
                pass
        self.conn = None
