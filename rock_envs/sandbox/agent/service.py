"""The agent's unix-socket service: one request at a time per connection, many connections at once.

A request is one message ``{"op": ..., ...}``; the reply is zero or more ``{"t": "chunk"|"data"}``
messages and then exactly one ``{"t": "result"}`` or ``{"t": "error", "type", "message"}``. Uploads
send ``{"t": "data"}`` messages after the request and end with ``{"t": "eof"}``. The first connection
that says ``{"op": "hello", "lifeline": true}`` owns the agent: when it closes, the agent exits and
takes every process of the sandbox with it. Standard library only.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import traceback
from typing import Any, Awaitable, Callable

from . import wire
from .fault import Fault
from .files import Files
from .procs import Jobs, run_command, syntax_error
from .reset import reset
from .shell import Sessions
from .tunnel import Tunnel

DEFAULT_LIMIT = 10 * 1024 * 1024
OWNER_WAIT = 120.0  # seconds a new agent waits for its owner's lifeline before it exits


class Agent:
    def __init__(self, socket_path: str, root: str, state: str, info: dict[str, Any]):
        self.socket_path, self.root, self.state = socket_path, root, state
        self.env = dict(os.environ)
        self.files = Files(root)
        self.sessions = Sessions(root, self.env)
        self.jobs = Jobs(root, self.env, os.path.join(state, "jobs"))
        self.workers: set[asyncio.subprocess.Process] = set()
        self.info = {**info, "pid": os.getpid()}
        self.stopped = asyncio.Event()
        self.owned = asyncio.Event()  # the lifeline came
        self.ops: dict[str, Callable[..., Awaitable[Any]]] = {
            name[3:].replace("__", "."): getattr(self, name) for name in dir(self) if name.startswith("op_")
        }

    async def serve(self, on_ready: Callable[[], None] | None = None) -> None:
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        server = await asyncio.start_unix_server(self._connection, path=self.socket_path, limit=wire.READ_LIMIT)
        os.chmod(self.socket_path, 0o600)
        if on_ready is not None:
            on_ready()
        try:
            try:  # an owner that died between starting us and saying hello never will: do not linger
                await asyncio.wait_for(self.owned.wait(), OWNER_WAIT)
            except asyncio.TimeoutError:
                self.stopped.set()
            await self.stopped.wait()
        finally:
            server.close()
            await self.shutdown()

    async def shutdown(self) -> None:
        await self.sessions.close_all()
        await self.jobs.kill_all()
        for proc in self.workers:
            if proc.returncode is None:
                proc.kill()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lifeline = False
        try:
            while True:
                try:
                    header, body = await wire.read_message(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if header.get("op") == "hello" and header.get("lifeline"):
                    lifeline = True
                    self.owned.set()
                if header.get("op") == "worker.open":
                    await self._open_worker(header, writer)
                    return
                if header.get("op") == "tunnel.open":  # the connection becomes the loopback tunnel
                    await Tunnel(self.env).serve(header, reader, writer)
                    return
                await self._dispatch(header, body, reader, writer)
                await writer.drain()
        except (ConnectionError, wire.WireError):
            return
        finally:
            writer.close()
            if lifeline:
                self.stopped.set()

    async def _dispatch(self, header: dict[str, Any], body: bytes, reader: Any, writer: asyncio.StreamWriter) -> None:
        op = header.get("op")
        handler = self.ops.get(op) if isinstance(op, str) else None
        try:
            if handler is None:
                raise Fault("InvalidRequestError", f"agent: unknown op {op!r}; known: {', '.join(sorted(self.ops))}.")
            result = await handler(header, body=body, reader=reader, writer=writer)
            reply_body = b""
            if isinstance(result, tuple):
                result, reply_body = result
            wire.write_message(writer, {"t": "result", **(result or {})}, reply_body)
        except Fault as exc:
            wire.write_message(writer, {"t": "error", "type": exc.type_name, "message": exc.message})
        except (ConnectionError, asyncio.IncompleteReadError):
            raise
        except Exception as exc:  # report, never crash the agent
            wire.write_message(
                writer,
                {
                    "t": "error",
                    "type": "AgentError",
                    "message": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                },
            )

    # ---- basics -------------------------------------------------------------------------------

    async def op_hello(self, h: dict[str, Any], **_: Any) -> dict[str, Any]:
        return self.info

    async def op_ping(self, h: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {"pid": os.getpid()}

    async def op_sandbox__reset(self, h: dict[str, Any], **_: Any) -> dict[str, Any]:
        """Back to new for a pool's next user (see :mod:`.reset`)."""
        await self.shutdown()
        self.workers.clear()
        self.jobs.by_id.clear()
        if "writable-root" in self.info.get("isolation", []):  # writes anywhere: no list of places to wipe
            return {"clean": False, "why": "a sandbox with a writable root cannot be wiped, only replaced"}
        return await reset([self.root, self.jobs.logdir], bool(self.info.get("pid_namespace")))

    async def op_shutdown(self, h: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.stopped.set()
        return {}

    # ---- sessions and commands ----------------------------------------------------------------

    async def op_session__create(self, h: dict[str, Any], **_: Any) -> dict[str, Any]:
        await self.sessions.create(
            h["session"],
            h.get("env"),
            self._cwd(h),
            inherit_env=h.get("inherit_env", True),
            tty=bool(h.get("tty")),
            source=h.get("source"),
            idle_timeout=h.get("idle_timeout"),
            user=h.get("user"),
        )
        return {"session": h["session"]}

    async def op_session__close(self, h: dict[str, Any], **_: Any) -> dict[str, Any]:
        await self.sessions.close(h["session"])
        return {"session": h["session"]}

    async def op_session__list(self, h: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {"sessions": sorted(self.sessions.by_name)}

    async def op_exec(self, h: dict[str, Any], writer: asyncio.StreamWriter, **_: Any) -> dict[str, Any]:
        on_chunk = None
        if h.get("stream"):

            def on_chunk(stream: str, chunk: bytes) -> None:
                wire.write_message(writer, {"t": "chunk", "stream": stream}, chunk)

        timeout, limit = float(h.get("timeout", 60)), int(h.get("max_output") or DEFAULT_LIMIT)
        if h.get("syntax_check") and (error := await syntax_error(h["cmd"])):
            return {"output": "", "stderr": error, "exit_code": 2, "timed_out": False, "syntax_error": True}
        if h.get("session"):
            session = self.sessions.get(h["session"], "run")
            return await session.run(h["cmd"], timeout, limit, on_chunk)
        base = self.env if h.get("inherit_env", True) else {}
        env = {**base, **(h.get("env") or {})}
        argv = h.get("argv")
        return await run_command(h["cmd"], self._cwd(h) or self.root, env, timeout, limit, on_chunk, argv)

    def _cwd(self, h: dict[str, Any]) -> str | None:
        return self.files.resolve(h["cwd"], "cwd") if h.get("cwd") else None

    # ---- jobs ---------------------------------------------------------------------------------

    async def op_job__start(self, h: dict[str, Any], **_: Any) -> dict[str, Any]:
        return await self.jobs.start(h["cmd"], h.get("env"), self._cwd(h))

    async def op_job__info(self, h: dict[str, Any], **_: Any) -> dict[str, Any]:
        return self.jobs.get(h["job_id"], "poll_job").info()

    async def op_job__list(self, h: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {"jobs": [job.info() for job in self.jobs.by_id.values()]}

    async def op_job__wait(self, h: dict[str, Any], **_: Any) -> dict[str, Any]:
        return await self.jobs.wait(h["job_id"], float(h.get("timeout", 60)))

    async def op_job__logs(self, h: dict[str, Any], **_: Any) -> tuple[dict[str, Any], bytes]:
        return self.jobs.logs(
            h["job_id"], h.get("stream", "stdout"), int(h.get("offset", 0)), int(h.get("limit") or DEFAULT_LIMIT)
        )

    async def op_job__kill(self, h: dict[str, Any], **_: Any) -> dict[str, Any]:
        return await self.jobs.kill(h["job_id"])

    # ---- files --------------------------------------------------------------------------------

    async def op_file__read(self, h: dict[str, Any], **_: Any) -> tuple[dict[str, Any], bytes]:
        data = self.files.read(h["path"], int(h.get("offset", 0)), int(h.get("length", -1)))
        return {"size": len(data)}, data

    async def op_file__write(self, h: dict[str, Any], body: bytes, **_: Any) -> dict[str, Any]:
        return {"size": self.files.write(h["path"], body, h.get("mode"))}

    async def op_file__list(self, h: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {"entries": self.files.listdir(h.get("path") or ".", bool(h.get("recursive")))}

    async def op_file__delete(self, h: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.files.delete(h["path"], bool(h.get("recursive")))
        return {}

    async def op_upload(self, h: dict[str, Any], reader: asyncio.StreamReader, **_: Any) -> dict[str, Any]:
        """Receive ``data`` messages until ``eof``; a file goes straight to disk, a tar is spooled then extracted."""
        is_tar = bool(h.get("tar"))
        fault: Fault | None = None
        try:
            if is_tar:
                self.files.resolve(h["path"], "upload_dir")
                fh: Any = tempfile.TemporaryFile(dir=self.state)
            else:
                fh = self.files.open_write(h["path"], "upload", h.get("mode"))
        except Fault as exc:
            fault, fh = exc, None
        size = 0
        try:
            while True:
                msg, chunk = await wire.read_message(reader)
                if msg.get("t") == "eof":
                    break
                if msg.get("t") == "abort":
                    raise Fault("InvalidRequestError", "`upload`: the sender aborted the upload.")
                size += len(chunk)
                if fh is not None:
                    fh.write(chunk)
            if fault is not None:
                raise fault
            if is_tar:
                fh.seek(0)
                count = await asyncio.to_thread(self.files.extract_tar, fh, h["path"])
                return {"size": size, "members": count}
            return {"size": size}
        finally:
            if fh is not None:
                fh.close()

    async def op_download(self, h: dict[str, Any], writer: asyncio.StreamWriter, **_: Any) -> dict[str, Any]:
        if h.get("tar"):
            src = self.files.tar_source(h["path"])
            spool = tempfile.TemporaryFile(dir=self.state)
            await asyncio.to_thread(_tar_into, spool, src)
            spool.seek(0)
            chunks: Any = iter(lambda: spool.read(wire.CHUNK), b"")
        else:
            spool = None
            chunks = self.files.iter_file(h["path"])
            first = next(chunks, None)  # raises "not found" before any data is sent
            chunks = _chain(first, chunks) if first is not None else iter(())
        size = 0
        try:
            for chunk in chunks:
                size += len(chunk)
                wire.write_message(writer, {"t": "data"}, chunk)
                await writer.drain()
        finally:
            if spool is not None:
                spool.close()
        return {"size": size}

    # ---- env hosting: a process holding one end of a socketpair, handed to the caller ---------

    async def _open_worker(self, h: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            fd = theirs.fileno()
            argv = [str(a).replace("{fd}", str(fd)).replace("{python}", _python()) for a in h.get("argv") or []]
            if not argv:
                raise Fault("InvalidRequestError", "`open_worker`: expected a non-empty argv.")
            proc = await asyncio.create_subprocess_exec(
                *argv,
                pass_fds=(fd,),
                cwd=self._cwd(h) or self.root,
                env={**self.env, **(h.get("env") or {})},
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
            theirs.close()
            self.workers.add(proc)
            asyncio.ensure_future(proc.wait()).add_done_callback(lambda _: self.workers.discard(proc))
            raw = writer.get_extra_info("socket")
            conn = socket.socket(fileno=os.dup(raw.fileno()))
            try:
                conn.setblocking(True)
                socket.send_fds(conn, [wire.encode({"t": "result", "pid": proc.pid})], [ours.fileno()])
            finally:
                conn.close()
        except Fault as exc:
            wire.write_message(writer, {"t": "error", "type": exc.type_name, "message": exc.message})
        except OSError as exc:
            wire.write_message(writer, {"t": "error", "type": "SandboxError", "message": f"`open_worker`: {exc}"})
        finally:
            ours.close()
            theirs.close()
            await writer.drain()


def _python() -> str:
    import sys

    return sys.executable or "python3"


def _chain(first: bytes, rest: Any) -> Any:
    yield first
    yield from rest


def _tar_into(fileobj: Any, src: str) -> None:
    import tarfile

    with tarfile.open(fileobj=fileobj, mode="w") as tar:
        tar.add(src, arcname=".")
