"""The host's side of the agent protocol: a small pool of persistent unix-socket connections.

One request at a time per connection (the agent serves connections concurrently), so a slow call
never holds up a fast one and a streamed transfer gets the socket's own back-pressure. A connection
whose request was cut short is closed, never reused. One extra connection, the *lifeline*, stays
open and idle for the sandbox's whole life: when it closes (this process exits or crashes), the
agent exits and takes the sandbox's processes with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from typing import Any, AsyncGenerator, AsyncIterator, Callable

from .agent import wire
from .errors import CommandTimeoutError, SandboxDiedError, SandboxError, from_wire

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
POOL = 8


@dataclass
class _Lease:
    conn: Conn
    clean: bool = False


class AgentClient:
    def __init__(self, socket_path: str, sandbox_id: str):
        self.path = socket_path
        self.sandbox_id = sandbox_id
        self.idle: list[Conn] = []
        self.lifeline: Conn | None = None
        self.closed = False

    @property
    def alive(self) -> bool:
        """False once the agent closed its end of the lifeline (it exited, or was killed)."""
        return not self.closed and self.lifeline is not None and not self.lifeline[0].at_eof()

    def _died(self, call: str, exc: BaseException | None = None) -> SandboxDiedError:
        why = f" ({type(exc).__name__}: {exc})" if exc else ""
        return SandboxDiedError(
            f"`{call}`: the agent of sandbox {self.sandbox_id!r} is gone{why}; it was killed, ran out of memory, "
            "or was stopped. Create a new sandbox."
        )

    async def hello(self) -> dict[str, Any]:
        """Open the lifeline and return the agent's self-description."""
        try:
            reader, writer = await asyncio.open_unix_connection(self.path, limit=wire.READ_LIMIT)
        except OSError as exc:
            raise self._died("start", exc) from exc
        self.lifeline = (reader, writer)
        wire.write_message(writer, {"op": "hello", "lifeline": True})
        header, _ = await wire.read_message(reader)
        return header

    async def _take(self, call: str) -> Conn:
        if self.closed:
            raise self._died(call)
        while self.idle:
            conn = self.idle.pop()
            if not conn[1].is_closing() and not conn[0].at_eof():
                return conn
        try:
            return await asyncio.open_unix_connection(self.path, limit=wire.READ_LIMIT)
        except OSError as exc:
            raise self._died(call, exc) from exc

    def _give(self, conn: Conn) -> None:
        if len(self.idle) < POOL and not self.closed:
            self.idle.append(conn)
        else:
            conn[1].close()

    @contextlib.asynccontextmanager
    async def _lease(self, call: str) -> AsyncIterator[_Lease]:
        """A pooled connection for one request. It goes back to the pool only if the request ended
        cleanly (`lease.clean`); a broken connection is closed and the agent reported gone."""
        lease = _Lease(await self._take(call))
        try:
            yield lease
        except (asyncio.IncompleteReadError, ConnectionError, wire.WireError) as exc:
            raise self._died(call, exc) from exc
        finally:
            if lease.clean:
                self._give(lease.conn)
            else:
                lease.conn[1].close()

    async def messages(
        self, header: dict[str, Any], body: bytes = b"", timeout: float | None = None
    ) -> AsyncGenerator[tuple[dict[str, Any], bytes], None]:
        """Send one request; yield every reply message up to and including the final ``result``.

        ``timeout`` bounds the wait for each reply message; past it the connection is dropped and
        :class:`CommandTimeoutError` raised (the agent is wedged: e.g. a fork bomb filled its pids).
        """
        call = str(header.get("op"))
        async with self._lease(call) as lease:
            reader, writer = lease.conn
            wire.write_message(writer, header, body)
            await writer.drain()
            while True:
                try:
                    msg, data = await asyncio.wait_for(wire.read_message(reader), timeout)
                except asyncio.TimeoutError:
                    raise CommandTimeoutError(
                        f"`{call}`: sandbox {self.sandbox_id!r} did not answer within {timeout} s; it may be "
                        "overloaded (check its pids and memory limits) or the call needs a longer timeout."
                    ) from None
                kind = msg.get("t")
                if kind == "error":
                    lease.clean = True
                    raise from_wire(str(msg.get("type")), str(msg.get("message")))
                if kind == "result":
                    lease.clean = True
                yield msg, data
                if kind == "result":
                    return

    async def call(
        self,
        header: dict[str, Any],
        body: bytes = b"",
        on_chunk: Callable[[str, bytes], Any] | None = None,
        timeout: float | None = None,
    ) -> tuple[dict[str, Any], bytes]:
        gen = self.messages(header, body, timeout)
        try:
            async for msg, data in gen:
                if msg.get("t") == "result":
                    return msg, data
                if on_chunk is not None and msg.get("t") == "chunk":
                    await on_chunk(str(msg.get("stream")), data)
        finally:
            await gen.aclose()
        raise self._died(str(header.get("op")))

    async def upload(self, header: dict[str, Any], chunks: AsyncIterator[bytes]) -> dict[str, Any]:
        async with self._lease(str(header.get("op"))) as lease:
            reader, writer = lease.conn
            wire.write_message(writer, header)
            try:
                async for chunk in chunks:
                    for i in range(0, len(chunk), wire.CHUNK):
                        wire.write_message(writer, {"t": "data"}, chunk[i : i + wire.CHUNK])
                        await writer.drain()
            except BaseException:
                wire.write_message(writer, {"t": "abort"})
                await writer.drain()
                raise
            wire.write_message(writer, {"t": "eof"})
            await writer.drain()
            msg, _ = await wire.read_message(reader)
            lease.clean = True
            if msg.get("t") == "error":
                raise from_wire(str(msg.get("type")), str(msg.get("message")))
            return msg

    async def open_worker(self, argv: list[str], env: dict[str, str] | None) -> socket.socket:
        """Start ``argv`` in the sandbox with one end of a socketpair as ``{fd}``; return the other end."""

        def blocking() -> socket.socket:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(60)
                conn.connect(self.path)
                conn.sendall(wire.encode({"op": "worker.open", "argv": argv, "env": env}))
                try:
                    msg, _, fds = wire.recv_message_with_fds(conn)
                except EOFError as exc:
                    raise ConnectionError("the agent closed the connection mid-reply") from exc
                if msg.get("t") == "error":
                    for fd in fds:
                        socket.close(fd)
                    raise from_wire(str(msg.get("type")), str(msg.get("message")))
                if not fds:
                    raise ConnectionError("no socket came with the reply")
                return socket.socket(fileno=fds[0])

        try:
            return await asyncio.to_thread(blocking)
        except SandboxError:
            raise
        except OSError as exc:
            raise self._died("open_worker", exc) from exc

    async def close(self) -> None:
        self.closed = True
        for _, writer in self.idle:
            writer.close()
        self.idle = []
        if self.lifeline is not None:
            self.lifeline[1].close()
            self.lifeline = None
