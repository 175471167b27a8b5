"""``/workers``: one WebSocket per client, multiplexing frames to and from env workers in many sandboxes.

The server is a pure router: it never decodes a frame and never blocks its loop on a worker.

Client to server:
    text   ``{"op": "open", "channel": C, "sandbox_id": S, "argv": [...]?, "env": {...}?}``
    text   ``{"op": "close", "channel": C}``
    binary ``[u32 C][payload]``: one frame for channel C's worker
Server to client:
    text   ``{"op": "opened", "channel": C}``, ``{"op": "closed", "channel": C, "reason": ...}``,
           ``{"op": "error", "channel": C, "type": ..., "message": ...}``
    binary ``[u32 C][payload]``: one frame from channel C's worker, in order

Requests on a channel may be pipelined; replies keep their order. A channel holds its sandbox
(no TTL reaping while open); closing the channel or the WebSocket ends its worker.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ...core.frames import U32, FrameTooLargeError, frame, read_frame_async
from ...core.live_view import FRAME_DIR_ENV
from ..agent_api import AgentSandboxAPI
from ..errors import SandboxError
from ..models import WORKER_ARGV, WorkerRequest

router = APIRouter()
FRAMES = ".rock-envs/frames"


def frame_dir(key: str) -> str:
    """Where the worker of channel ``key`` writes its frame, relative to its sandbox's root."""
    return f"{FRAMES}/{key}"


HIGH_WATER = 16 * 1024 * 1024
OUTBOX = 1024


class _Channel:
    def __init__(self, cid: int, key: str, held: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.cid, self.key, self.reader, self.writer = cid, key, reader, writer
        self.entry = held  # what the api's hold() gave: the manager's Entry (the dashboard reads it), or an id
        self.pump: asyncio.Task[None] | None = None
        self.frames_in = self.frames_out = 0
        self.opened_at = time.monotonic()


class Router:
    def __init__(self, ws: WebSocket, api: AgentSandboxAPI):
        self.ws, self.api = ws, api
        self.channels: dict[int, _Channel] = {}
        self.outbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(OUTBOX)
        self.counts = ws.app.state.relay

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop())
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    await self._frame(message["bytes"])
                elif message.get("text") is not None:
                    await self._control(message["text"])
        except WebSocketDisconnect:
            return
        finally:
            for cid in list(self.channels):
                self._drop(cid)
            sender.cancel()

    async def _send_loop(self) -> None:
        while True:
            kind, data = await self.outbox.get()
            if kind == "bytes":
                await self.ws.send_bytes(data)
            else:
                await self.ws.send_text(json.dumps(data))

    async def _say(self, **data: Any) -> None:
        await self.outbox.put(("text", data))

    async def _control(self, text: str) -> None:
        try:
            msg = json.loads(text)
            op, cid = msg["op"], int(msg["channel"])
        except (ValueError, KeyError, TypeError):
            await self._say(
                op="error",
                channel=None,
                type="InvalidRequestError",
                message="control messages are JSON objects with `op` and an integer `channel`.",
            )
            return
        if op == "close":
            if self._drop(cid):
                await self._say(op="closed", channel=cid, reason="closed by client")
        elif op == "open":
            await self._open(cid, msg)
        else:
            await self._say(op="error", channel=cid, type="InvalidRequestError", message=f"unknown op {op!r}.")

    async def _open(self, cid: int, msg: dict[str, Any]) -> None:
        if cid in self.channels:
            await self._say(op="error", channel=cid, type="InvalidRequestError", message=f"channel {cid} is open.")
            return
        try:
            sid = str(msg.get("sandbox_id"))
            held = self.api.hold(sid, "open_worker")  # in use (never reaped) while the channel is open
            key = self.counts.count_open(sid)
            try:
                env = {**(msg.get("env") or {}), FRAME_DIR_ENV: frame_dir(key)}  # its frame, for the dashboard
                req = WorkerRequest(argv=list(msg.get("argv") or WORKER_ARGV), env=env)
                sock = await self.api.open_worker_socket(sid, req)
                reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
            except BaseException:
                self.api.release(held)
                raise
        except SandboxError as exc:
            await self._say(op="error", channel=cid, type=type(exc).__name__, message=exc.message)
            return
        channel = _Channel(cid, key, held, reader, writer)
        self.channels[cid] = channel
        self.counts.channels += 1
        self.counts.open[id(channel)] = channel
        channel.pump = asyncio.create_task(self._pump(channel))
        await self._say(op="opened", channel=cid)

    async def _frame(self, data: bytes) -> None:
        if len(data) < 4:
            await self._say(
                op="error", channel=None, type="InvalidRequestError", message="binary message under 4 bytes."
            )
            return
        (cid,) = U32.unpack_from(data)
        channel = self.channels.get(cid)
        if channel is None:
            await self._say(op="error", channel=cid, type="InvalidRequestError", message=f"channel {cid} is not open.")
            return
        self.counts.frames_in += 1
        channel.frames_in += 1
        self.counts.bytes_in += len(data) - 4
        channel.writer.write(frame(data[4:], "the /workers relay"))
        transport = channel.writer.transport
        if transport.get_write_buffer_size() > HIGH_WATER:
            await channel.writer.drain()

    async def _pump(self, channel: _Channel) -> None:
        prefix = U32.pack(channel.cid)
        reason = "the worker closed its end"
        try:
            while True:
                payload = await read_frame_async(channel.reader, "the /workers relay")
                self.counts.frames_out += 1
                channel.frames_out += 1
                self.counts.bytes_out += len(payload)
                await self.outbox.put(("bytes", prefix + payload))
        except (asyncio.IncompleteReadError, ConnectionError, FrameTooLargeError):
            pass
        except asyncio.CancelledError:
            return
        if self._drop(channel.cid, from_pump=True):
            await self._say(op="closed", channel=channel.cid, reason=reason)

    def _drop(self, cid: int, from_pump: bool = False) -> bool:
        channel = self.channels.pop(cid, None)
        if channel is None:
            return False
        channel.writer.close()
        self.counts.channels -= 1
        self.counts.open.pop(id(channel), None)
        if channel.pump is not None and not from_pump:
            channel.pump.cancel()
        self.api.release(channel.entry)
        return True


@router.websocket("/workers")
async def workers(ws: WebSocket) -> None:
    if not ws.app.state.check_token(ws.headers.get("authorization", "")):
        await ws.close(code=1008, reason="missing or wrong bearer token")
        return
    await ws.accept()
    await Router(ws, ws.app.state.api).run()
