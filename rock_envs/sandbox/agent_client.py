"""The host's side of the agent protocol: a small pool of persistent connections to the agent.

The agent is reached at an *address*: a unix socket path (the sandbox runs where this process
does), or ``tcp://host:port`` plus the sandbox's secret: the relay on the sandbox's node
(``runtime/relay.py``), which pipes each connection to the agent's socket there. Both speak the
same protocol; only :func:`dial` and :meth:`AgentClient.open_worker` know the difference.

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
TCP = "tcp://"


def relay_hello(secret: str, mode: str, **fields: Any) -> dict[str, Any]:
    """The first message of every relay connection (see ``runtime/relay.py``)."""
    return {"op": "relay", "secret": secret, "mode": mode, **fields}


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address[len(TCP) :].rpartition(":")
    return host, int(port)


def tune(target: socket.socket | asyncio.StreamWriter) -> None:
    """A relay connection (TCP): no Nagle delay on small frames, and keepalive probes, so a peer
    machine gone without a word is noticed within about 10 s. Unix sockets are left alone."""
    sock = target.get_extra_info("socket") if isinstance(target, asyncio.StreamWriter) else target
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 4), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


async def dial(address: str, secret: str = "") -> Conn:
    """A new connection to an agent: its unix socket, or ``tcp://host:port`` through its relay."""
    if not address.startswith(TCP):
        return await asyncio.open_unix_connection(address, limit=wire.READ_LIMIT)
    host, port = _host_port(address)
    reader, writer = await asyncio.open_connection(host, port, limit=wire.READ_LIMIT)
    tune(writer)
    wire.write_message(writer, relay_hello(secret, "agent"))  # no round trip: a refusal is the first reply
    return reader, writer


@dataclass
class _Lease:
    conn: Conn
    clean: bool = False


class AgentClient:
    """The agent at ``address`` (a unix path, or ``tcp://host:port`` with ``secret``); ``where`` says
    where the sandbox runs, for error messages (e.g. ``on Ray node ...``)."""

    def __init__(self, address: str, sandbox_id: str, secret: str = "", where: str = ""):
        self.path = address
        self.secret = secret
        self.where = where
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
            f"`{call}`: the agent of sandbox {self.sandbox_id!r}{self.where} is gone{why}; it was killed, ran out "
            "of memory, was stopped, or its node was lost. Create a new sandbox."
        )

    async def hello(self) -> dict[str, Any]:
        """Open the lifeline and return the agent's self-description."""
        try:
            reader, writer = await self.connect()
        except OSError as exc:
            raise self._died("start", exc) from exc
        self.lifeline = (reader, writer)
        wire.write_message(writer, {"op": "hello", "lifeline": True})
        try:
            header, _ = await wire.read_message(reader)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise self._died("start", exc) from exc
        if header.get("t") == "error":  # the relay refused (a wrong secret)
            raise from_wire(str(header.get("type")), str(header.get("message")))
        return header

    async def connect(self) -> Conn:
        """A new connection of the agent protocol (for a channel that takes one over: the model tunnel)."""
        return await dial(self.path, self.secret)

    async def _take(self, call: str) -> Conn:
        if self.closed:
            raise self._died(call)
        while self.idle:
            conn = self.idle.pop()
            if not conn[1].is_closing() and not conn[0].at_eof():
                return conn
        try:
            return await self.connect()
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
        """Start ``argv`` in the sandbox with one end of a socketpair as ``{fd}``; return the other end
        (through a relay: a TCP socket the relay pipes to that end)."""

        def relayed() -> socket.socket:
            conn = socket.create_connection(_host_port(self.path), timeout=60)
            try:
                tune(conn)
                conn.sendall(wire.encode(relay_hello(self.secret, "worker", argv=argv, env=env)))
                try:
                    msg, _ = wire.recv_message(conn)
                except EOFError as exc:
                    raise ConnectionError("the relay closed the connection mid-reply") from exc
                if msg.get("t") == "error":
                    raise from_wire(str(msg.get("type")), str(msg.get("message")))
                conn.settimeout(None)
                return conn
            except BaseException:
                conn.close()
                raise

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
            return await asyncio.to_thread(relayed if self.path.startswith(TCP) else blocking)
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
