"""The sandbox operations that go to a sandbox's agent, written once over one abstract way to reach it.

:class:`AgentSandboxAPI` is the only code that speaks the agent protocol. It needs ``use(id, call)``
(an agent for the length of an ``async with``) and ``hold``/``release`` (a sandbox kept in use by a
long-lived channel). Two implementations give them: :class:`~rock_envs.sandbox.local.LocalSandboxAPI`
(a manager in this process, which owns its sandboxes' agents and lifelines) and
:class:`~rock_envs.sandbox.cluster.replica.ReplicaSandboxAPI` (a data replica, which finds agents it does
not own in the control plane's store and opens ordinary connections to them). A request model goes
to the agent as it is: ``{"op": name, **model}``, the same keys.
"""

from __future__ import annotations

import codecs
import contextlib
import socket
from abc import abstractmethod
from typing import Any, AsyncContextManager, AsyncIterator

from pydantic import BaseModel

from . import models as m
from .agent_client import AgentClient
from .api import SandboxAPI
from .errors import SandboxDiedError
from .manager import AGENT_GRACE
from .sdk.worker import SocketChannel, WorkerChannel


def _header(op: str, req: BaseModel | None = None) -> dict[str, Any]:
    return {"op": op, **(req.model_dump(exclude_none=True) if req is not None else {})}


class AgentSandboxAPI(SandboxAPI):
    """Sessions, commands, jobs, files and env hosting, each one request to the sandbox's agent."""

    @abstractmethod
    def use(self, sandbox_id: str, call: str) -> AsyncContextManager[AgentClient]:
        """The agent of a running sandbox for the ``async with``; the sandbox counts as busy meanwhile.

        Raises :class:`SandboxNotFoundError` (no such sandbox) or :class:`SandboxDiedError` (not running)."""

    @abstractmethod
    def hold(self, sandbox_id: str, call: str) -> object:
        """Keep a running sandbox in use (never reaped) until :meth:`release` of what this returns."""

    @abstractmethod
    def release(self, held: object) -> None:
        """End a :meth:`hold`."""

    async def _call(
        self, sandbox_id: str, op: str, req: BaseModel | None = None, body: bytes = b"", timeout: float = 0.0
    ) -> tuple[dict[str, Any], bytes]:
        async with self.use(sandbox_id, op) as agent:
            return await agent.call(_header(op, req), body, timeout=timeout + AGENT_GRACE)

    # ---- sessions and commands ----------------------------------------------------------------

    async def create_session(self, sandbox_id: str, req: m.SessionRequest) -> m.SessionRef:
        await self._call(sandbox_id, "session.create", req)
        return m.SessionRef(session=req.session)

    async def close_session(self, sandbox_id: str, req: m.SessionRef) -> m.SessionRef:
        await self._call(sandbox_id, "session.close", req)
        return req

    async def run(self, sandbox_id: str, req: m.RunRequest) -> m.CommandResult:
        msg, _ = await self._call(sandbox_id, "exec", req, timeout=req.timeout)
        return _result(msg)

    async def run_stream(self, sandbox_id: str, req: m.RunRequest) -> AsyncIterator[m.CommandEvent]:
        stack = contextlib.AsyncExitStack()
        agent = await stack.enter_async_context(self.use(sandbox_id, "stream"))
        replies = agent.messages({**_header("exec", req), "stream": True}, timeout=req.timeout + AGENT_GRACE)
        stack.push_async_callback(replies.aclose)
        decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")}

        async def events() -> AsyncIterator[m.CommandEvent]:
            async with stack:
                async for msg, data in replies:
                    if msg.get("t") == "chunk":
                        stream = str(msg.get("stream"))
                        if text := decoders[stream].decode(data):
                            yield {"type": "chunk", "stream": stream, "data": text}
                    elif msg.get("t") == "result":
                        yield {"type": "result", **_result(msg).model_dump()}
                        return
                raise SandboxDiedError(f"`stream`: sandbox {sandbox_id!r} ended the output without a result.")

        return events()

    # ---- jobs ---------------------------------------------------------------------------------

    async def start_job(self, sandbox_id: str, req: m.JobRequest) -> m.JobInfo:
        return _job((await self._call(sandbox_id, "job.start", req))[0])

    async def job(self, sandbox_id: str, req: m.JobRef) -> m.JobInfo:
        return _job((await self._call(sandbox_id, "job.info", req))[0])

    async def list_jobs(self, sandbox_id: str) -> m.JobList:
        msg, _ = await self._call(sandbox_id, "job.list")
        return m.JobList(jobs=[_job(j) for j in msg["jobs"]])

    async def wait_job(self, sandbox_id: str, req: m.WaitJobRequest) -> m.JobInfo:
        return _job((await self._call(sandbox_id, "job.wait", req, timeout=req.timeout))[0])

    async def job_logs(self, sandbox_id: str, req: m.JobLogsRequest) -> m.JobLogs:
        msg, data = await self._call(sandbox_id, "job.logs", req)
        return m.JobLogs(
            job=_job(msg),
            stream=req.stream,
            offset=msg["offset"],
            next_offset=msg["next_offset"],
            data=data.decode("utf-8", errors="replace"),
        )

    async def kill_job(self, sandbox_id: str, req: m.JobRef) -> m.JobInfo:
        return _job((await self._call(sandbox_id, "job.kill", req))[0])

    # ---- files --------------------------------------------------------------------------------

    async def list_files(self, sandbox_id: str, req: m.FileQuery) -> m.FileList:
        msg, _ = await self._call(sandbox_id, "file.list", req)
        return m.FileList(entries=[m.FileEntry(**e) for e in msg["entries"]])

    async def delete_file(self, sandbox_id: str, req: m.FileQuery) -> m.TransferResult:
        await self._call(sandbox_id, "file.delete", req)
        return m.TransferResult(path=req.path, size=0)

    async def write_file(self, sandbox_id: str, req: m.UploadRequest, data: bytes) -> m.TransferResult:
        msg, _ = await self._call(sandbox_id, "file.write", req, data)  # one message: no stream needed
        return m.TransferResult(path=req.path, size=msg["size"])

    async def upload(self, sandbox_id: str, req: m.UploadRequest, chunks: AsyncIterator[bytes]) -> m.TransferResult:
        async with self.use(sandbox_id, "upload") as agent:
            msg = await agent.upload(_header("upload", req), chunks)
        return m.TransferResult(path=req.path, size=msg["size"])

    async def download(self, sandbox_id: str, req: m.DownloadRequest) -> AsyncIterator[bytes]:
        stack = contextlib.AsyncExitStack()
        agent = await stack.enter_async_context(self.use(sandbox_id, "download"))
        replies = agent.messages(_header("download", req))
        stack.push_async_callback(replies.aclose)
        try:
            first = await replies.__anext__()  # a missing file raises here, before any chunk
        except BaseException:
            await stack.aclose()
            raise

        async def chunks() -> AsyncIterator[bytes]:
            async with stack:
                msg, data = first
                while msg.get("t") == "data":
                    yield data
                    msg, data = await replies.__anext__()

        return chunks()

    # ---- env hosting --------------------------------------------------------------------------

    async def open_worker_socket(self, sandbox_id: str, req: m.WorkerRequest) -> socket.socket:
        """The worker's end of a socketpair, for callers that relay frames themselves (the server)."""
        async with self.use(sandbox_id, "open_worker") as agent:
            return await agent.open_worker(req.argv, req.env)

    async def open_worker(self, sandbox_id: str, req: m.WorkerRequest) -> WorkerChannel:
        entry = self.hold(sandbox_id, "open_worker")
        try:
            sock = await self.open_worker_socket(sandbox_id, req)
        except BaseException:
            self.release(entry)
            raise
        return SocketChannel(sock, on_close=lambda: self.release(entry))


def _result(msg: dict[str, Any]) -> m.CommandResult:
    return m.CommandResult(
        output=msg["output"],
        stderr=msg["stderr"],
        exit_code=msg["exit_code"],
        timed_out=msg["timed_out"],
        truncated=msg.get("truncated", False),
        syntax_error=msg.get("syntax_error", False),
        note=msg.get("note", ""),
    )


def _job(msg: dict[str, Any]) -> m.JobInfo:
    return m.JobInfo(**{k: msg[k] for k in m.JobInfo.model_fields})
