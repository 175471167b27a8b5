"""A sandbox's agent socket offered over TCP on the sandbox's own node: how a manager on another
machine reaches a Ray-placed sandbox.

The relay listens on its node's IP and serves one sandbox. Every connection first sends one wire
message, ``{"op": "relay", "secret": S, "mode": "agent" | "worker", ...}``; a wrong secret gets an
error message and the connection is closed. Then:

- ``agent``: the relay connects to the agent's unix socket and copies bytes both ways until either
  side closes, and then closes the other. The agent protocol passes through untouched, so a lifeline
  through the relay is a lifeline: the manager's connection closed (or this relay gone) closes the
  agent's, and the agent exits.
- ``worker`` (with ``argv``, ``env``): the agent hands a new worker's socket over by ``SCM_RIGHTS``,
  which cannot cross TCP; so the relay opens the worker here, answers its ``result`` (or ``error``),
  and then copies bytes between the TCP connection and the worker's socket. Env frames go from the
  caller to the worker through this byte pipe only, never through Ray or the caller's manager.

The caller's side is :func:`rock_envs.sandbox.agent_client.dial`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import socket
import threading
from collections import Counter
from typing import Any

from ..agent import wire
from ..agent_client import AgentClient, tune
from ..errors import SandboxError

PIPE_READ = 256 * 1024


class Relay:
    def __init__(self, socket_path: str, sandbox_id: str, secret: str):
        self.path, self.secret = socket_path, secret
        self.agent = AgentClient(socket_path, sandbox_id)  # no lifeline of its own: only for `worker.open`
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()
        self.counts: Counter[str] = Counter()
        """Connections served, by mode (``agent``, ``worker``) and ``refused``: what tests read."""

    async def start(self, host: str) -> int:
        """Listen on ``host`` (the node's IP) at a free port; returns the port."""
        self.server = await asyncio.start_server(self._accept, host, 0, limit=wire.READ_LIMIT)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for task in list(self.pipes):
            task.cancel()
        if self.pipes:
            await asyncio.wait(self.pipes, timeout=10)
        await self.agent.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.pipes.add(task)
        tune(writer)
        try:
            try:
                header, _ = await asyncio.wait_for(wire.read_message(reader), 30)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, wire.WireError):
                return
            if header.get("op") != "relay" or not hmac.compare_digest(str(header.get("secret")), self.secret):
                self.counts["refused"] += 1
                await _refuse(writer, "AuthenticationError", "relay: wrong or missing secret for this sandbox.")
                return
            mode = header.get("mode")
            if mode == "agent":
                self.counts["agent"] += 1
                await self._pipe_agent(reader, writer)
            elif mode == "worker":
                self.counts["worker"] += 1
                await self._pipe_worker(header, reader, writer)
            else:
                await _refuse(writer, "InvalidRequestError", f"relay: unknown mode {mode!r}; expected agent or worker.")
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()
            self.pipes.discard(task)

    async def _pipe_agent(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            agent_reader, agent_writer = await asyncio.open_unix_connection(self.path, limit=wire.READ_LIMIT)
        except OSError as exc:
            await _refuse(writer, "SandboxDiedError", f"relay: the agent's socket does not answer ({exc}).")
            return
        await _splice(reader, writer, agent_reader, agent_writer)

    async def _pipe_worker(self, header: dict[str, Any], reader: asyncio.StreamReader, writer: Any) -> None:
        try:
            sock = await self.agent.open_worker(list(header.get("argv") or []), header.get("env"))
        except SandboxError as exc:
            await _refuse(writer, type(exc).__name__, exc.message)
            return
        # Frames then flow on two threads of plain blocking copies, not through this event loop:
        # about a third less per round trip here. Reading is paused first, so no frame the caller
        # sends after the result can land in the stream's buffer instead of the thread's socket.
        writer.transport.pause_reading()
        wire.write_message(writer, {"t": "result"})
        await writer.drain()
        tcp = socket.socket(fileno=os.dup(writer.get_extra_info("socket").fileno()))
        writer.transport.abort()
        tcp.setblocking(True)
        sock.setblocking(True)
        await _pump_threads(tcp, sock)


async def _pump_threads(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes a->b and b->a on a thread each until either side ends (or this is cancelled);
    then close both. Threads of their own: a pool's few would run out under many workers."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    left = [2]

    def copy(src: socket.socket, dst: socket.socket) -> None:
        buf = bytearray(PIPE_READ)
        view = memoryview(buf)
        try:
            while n := src.recv_into(buf):
                dst.sendall(view[:n])
        except OSError:
            pass
        finally:
            for end in (a, b):  # wakes the other thread
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            loop.call_soon_threadsafe(_one_left, left, done)

    threads = [threading.Thread(target=copy, args=pair, daemon=True) for pair in ((a, b), (b, a))]
    for thread in threads:
        thread.start()
    try:
        await done.wait()
    finally:
        for end in (a, b):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

        def join() -> None:
            for thread in threads:
                thread.join(10)

        await asyncio.to_thread(join)
        a.close()
        b.close()


def _one_left(left: list[int], done: asyncio.Event) -> None:
    left[0] -= 1
    if left[0] == 0:
        done.set()


async def _refuse(writer: asyncio.StreamWriter, type_name: str, message: str) -> None:
    try:
        wire.write_message(writer, {"t": "error", "type": type_name, "message": message})
        await writer.drain()
    except ConnectionError:
        pass


async def _splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Copy bytes a->b and b->a until either side ends; then close both."""

    async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(PIPE_READ):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass

    legs = [asyncio.ensure_future(copy(a_reader, b_writer)), asyncio.ensure_future(copy(b_reader, a_writer))]
    try:
        await asyncio.wait(legs, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for leg in legs:
            leg.cancel()
        a_writer.close()
        b_writer.close()


__all__ = ["Relay"]
