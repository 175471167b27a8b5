"""The manager's end of a sandbox's loopback tunnel: HTTP/1.1 (h11) over the agent's byte channel.

The agent carries each TCP connection made to ``127.0.0.1:PORT`` inside the sandbox as tagged byte
messages (see ``agent/tunnel.py``). Here each carried connection gets an ``h11`` server state
machine; every complete request goes to :meth:`ModelHub.handle` and its reply (a JSON body, or a
stream sent with chunked encoding) goes back the same way. Keep-alive works; pipelining does not.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import h11

from ..agent import wire
from ..errors import SandboxDiedError, from_wire

if TYPE_CHECKING:
    from ..agent_client import AgentClient
    from .hub import ModelHub, Reply

MAX_REQUEST = 16 * 1024 * 1024


class HubTunnel:
    def __init__(self, hub: ModelHub, sandbox_id: str):
        self.hub, self.sandbox_id = hub, sandbox_id
        self.writer: asyncio.StreamWriter | None = None
        self.inbox: dict[int, asyncio.Queue[bytes]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.pump: asyncio.Task[None] | None = None
        self.port = 0

    async def open(self, agent: AgentClient, port: int, env: dict[str, str]) -> int:
        try:
            reader, writer = await agent.connect()
            wire.write_message(writer, {"op": "tunnel.open", "port": port, "env": env})
            await writer.drain()
            msg, _ = await wire.read_message(reader)
        except (OSError, asyncio.IncompleteReadError, wire.WireError) as exc:
            raise SandboxDiedError(
                f"`model_service`: cannot open the tunnel to sandbox {self.sandbox_id!r} "
                f"({type(exc).__name__}: {exc}); the sandbox is gone."
            ) from exc
        if msg.get("t") == "error":
            writer.close()
            raise from_wire(str(msg.get("type")), str(msg.get("message")))
        self.writer, self.port = writer, int(msg["port"])
        self.pump = asyncio.create_task(self._pump(reader))
        return self.port

    async def close(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
        for queue in self.inbox.values():  # an end of stream as well as a cancel: Python 3.11's wait_for
            queue.put_nowait(b"")  # can swallow a cancel that races a result
        for task in list(self.tasks):
            task.cancel()
        pending = {*self.tasks, *([self.pump] if self.pump else [])}
        if pending:
            await asyncio.wait(pending, timeout=10)
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                msg, body = await wire.read_message(reader)
                cid, kind = int(msg.get("c") or 0), msg.get("t")
                if kind == "open":
                    self.inbox[cid] = asyncio.Queue()
                    task = asyncio.create_task(self._serve(cid, self.inbox[cid]))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                elif kind in ("data", "close") and cid in self.inbox:
                    self.inbox[cid].put_nowait(body if kind == "data" else b"")
        except (asyncio.IncompleteReadError, ConnectionError, wire.WireError):
            for queue in self.inbox.values():
                queue.put_nowait(b"")

    async def _send(self, cid: int, data: bytes) -> None:
        if data and self.writer is not None:
            wire.write_message(self.writer, {"t": "data", "c": cid}, data)
            await self.writer.drain()

    async def _serve(self, cid: int, inbox: asyncio.Queue[bytes]) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        request: Any = None
        body = bytearray()
        try:
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    await self._simple(conn, cid, 400, f"bad HTTP request: {exc}")
                    return
                if event is h11.NEED_DATA:
                    conn.receive_data(await inbox.get())
                elif isinstance(event, h11.Request):
                    request, body = event, bytearray()
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > MAX_REQUEST:
                        await self._simple(conn, cid, 413, f"request body over {MAX_REQUEST} bytes.")
                        return
                elif isinstance(event, h11.EndOfMessage):
                    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
                    reply = await self.hub.handle(
                        self.sandbox_id, request.method.decode(), request.target.decode(), headers, bytes(body)
                    )
                    await self._reply(conn, cid, reply)
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        return
                    conn.start_next_cycle()
                else:  # ConnectionClosed, PAUSED
                    return
        except (ConnectionError, h11.LocalProtocolError):
            return
        finally:
            self.inbox.pop(cid, None)
            if self.writer is not None and not self.writer.is_closing():
                try:
                    wire.write_message(self.writer, {"t": "close", "c": cid})
                except (ConnectionError, RuntimeError):
                    pass

    async def _reply(self, conn: h11.Connection, cid: int, reply: Reply) -> None:
        headers = [("content-type", reply.media_type), *reply.headers.items()]
        if reply.stream is None:
            headers.append(("content-length", str(len(reply.body))))
        else:
            headers.append(("cache-control", "no-cache"))
        await self._send(cid, conn.send(h11.Response(status_code=reply.status, headers=headers)))
        if reply.stream is not None:
            async for chunk in reply.stream:
                await self._send(cid, conn.send(h11.Data(data=chunk)))
        elif reply.body:
            await self._send(cid, conn.send(h11.Data(data=reply.body)))
        await self._send(cid, conn.send(h11.EndOfMessage()))

    async def _simple(self, conn: h11.Connection, cid: int, status: int, message: str) -> None:
        import json

        from .hub import Reply

        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = json.dumps(
                {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
            )
            await self._reply(conn, cid, Reply(status, body.encode(), headers={"connection": "close"}))
