"""A loopback listener inside the sandbox whose TCP connections are carried to the manager.

The manager opens one agent connection with ``{"op": "tunnel.open", "port": P, "env": {...}}``.
The agent listens on ``127.0.0.1:P`` (``0``: any free port) in the sandbox's own network namespace
(or container), puts ``env`` (with ``{port}`` filled in) into the environment of every later
session, command and job, and answers ``{"t": "result", "port": P}``. From then on the connection
carries raw bytes of every accepted TCP connection, tagged with a connection number ``c``:

    agent → manager   {"t": "open", "c": n}   {"t": "data", "c": n} + bytes   {"t": "close", "c": n}
    manager → agent   {"t": "data", "c": n} + bytes   {"t": "close", "c": n}

The agent never parses what it carries; the manager speaks HTTP on its side. When the manager's
connection closes, the listener and every carried connection close too. Standard library only.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from . import wire

READ = 64 * 1024


class Tunnel:
    def __init__(self, env: dict[str, str]):
        self.env = env
        self.conns: dict[int, asyncio.StreamWriter] = {}
        self.ids = itertools.count(1)
        self.upstream: asyncio.StreamWriter | None = None

    async def serve(self, header: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Run the tunnel on this (already taken over) agent connection until the manager closes it."""
        try:
            server = await asyncio.start_server(self._accept, "127.0.0.1", int(header.get("port") or 0))
        except OSError as exc:
            wire.write_message(
                writer,
                {"t": "error", "type": "SandboxError", "message": f"`tunnel.open`: cannot listen on 127.0.0.1: {exc}"},
            )
            await writer.drain()
            return
        port = server.sockets[0].getsockname()[1]
        self.env.update({str(k): str(v).replace("{port}", str(port)) for k, v in (header.get("env") or {}).items()})
        self.upstream = writer
        wire.write_message(writer, {"t": "result", "port": port})
        await writer.drain()
        try:
            while True:
                msg, body = await wire.read_message(reader)
                conn = self.conns.get(int(msg.get("c") or 0))
                if conn is None:
                    continue
                if msg.get("t") == "data":
                    conn.write(body)
                    await conn.drain()
                elif msg.get("t") == "close":
                    self.conns.pop(int(msg["c"]), None)
                    conn.close()
        except (asyncio.IncompleteReadError, ConnectionError, wire.WireError, asyncio.CancelledError):
            pass  # the manager hung up, or the agent is shutting down
        finally:
            self.upstream = None
            server.close()
            for conn in self.conns.values():
                conn.close()
            self.conns.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = self.upstream
        if upstream is None:
            writer.close()
            return
        cid = next(self.ids)
        self.conns[cid] = writer
        try:
            wire.write_message(upstream, {"t": "open", "c": cid})
            while True:
                data = await reader.read(READ)
                if not data or cid not in self.conns:
                    break
                wire.write_message(upstream, {"t": "data", "c": cid}, data)
                await upstream.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if self.conns.pop(cid, None) is not None:
                try:
                    wire.write_message(upstream, {"t": "close", "c": cid})
                except (ConnectionError, OSError, RuntimeError):
                    pass
            writer.close()
