"""The local implementation of :class:`SandboxAPI`: a manager in this process, and the only code that
talks to a sandbox's agent. The embedded SDK calls it directly; the server's routes are one line each
over it. A request model goes to the agent as it is: ``{"op": name, **model}``, the same keys."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import socket
import weakref
from typing import Any, AsyncIterator

from pydantic import BaseModel

from . import models as m
from .api import SandboxAPI
from .errors import SandboxDiedError
from .manager import AGENT_GRACE, SandboxManager
from .sdk.worker import SocketChannel, WorkerChannel


def _header(op: str, req: BaseModel | None = None) -> dict[str, Any]:
    return {"op": op, **(req.model_dump(exclude_none=True) if req is not None else {})}


class LocalSandboxAPI(SandboxAPI):
    """Sandboxes of ``manager`` (one of its own when none is given: closed by :meth:`aclose`)."""

    def __init__(self, manager: SandboxManager | None = None, runtime_dir: str | None = None):
        self.owns_manager = manager is None
        self.manager = manager or SandboxManager(runtime_dir=runtime_dir)
        self._handles = 1  # `shared()` hands out one api to many holders; the last aclose closes it
        self._shared_in: dict[str | None, LocalSandboxAPI] | None = None  # the registry that holds it, if any
        self._runtime_dir = runtime_dir

    @classmethod
    def shared(cls, runtime_dir: str | None = None) -> LocalSandboxAPI:
        """The api of every embedded `Sandbox` of the running event loop on ``runtime_dir``: one
        manager, so one zygote and one reaper for them all (a manager each cost a Python start per
        sandbox and made concurrent starts slower than sequential ones). Each call is one handle;
        the manager closes with the last handle's :meth:`aclose`."""
        apis = _SHARED.setdefault(asyncio.get_running_loop(), {})
        api = apis.get(runtime_dir)
        if api is None:
            api = apis[runtime_dir] = cls(runtime_dir=runtime_dir)
            api._shared_in = apis
        else:
            api._handles += 1
        return api

    async def _call(
        self, sandbox_id: str, op: str, req: BaseModel | None = None, body: bytes = b"", timeout: float = 0.0
    ) -> tuple[dict[str, Any], bytes]:
        async with self.manager.use(sandbox_id, op) as agent:
            return await agent.call(_header(op, req), body, timeout=timeout + AGENT_GRACE)

    # ---- lifecycle ----------------------------------------------------------------------------

    async def create(self, spec: m.SandboxSpec, timeout: float = 60.0) -> m.SandboxInfo:
        return await self.manager.create(spec, timeout)

    async def info(self, sandbox_id: str) -> m.SandboxInfo:
        return self.manager.info(sandbox_id)

    async def list(self, req: m.ListRequest) -> m.SandboxList:
        return m.SandboxList(sandboxes=self.manager.list(req.status, req.runtime, req.labels))

    async def delete(self, sandbox_id: str) -> m.SandboxInfo:
        return await self.manager.delete(sandbox_id)

    # ---- warm pools, leases, counts ------------------------------------------------------------

    async def create_pool(self, req: m.PoolRequest) -> m.PoolStats:
        return await self.manager.create_pool(req)

    async def list_pools(self) -> m.PoolList:
        return m.PoolList(pools=[pool.stats() for pool in self.manager.pools.values()])

    async def delete_pool(self, name: str) -> m.PoolStats:
        return await self.manager.delete_pool(name)

    async def claim(self, req: m.ClaimRequest) -> m.SandboxInfo:
        return await self.manager.claim(req)

    async def recycle(self, sandbox_id: str) -> m.SandboxInfo:
        return await self.manager.recycle(sandbox_id)

    async def renew(self, sandbox_id: str, req: m.LeaseRequest) -> m.SandboxInfo:
        return self.manager.renew(sandbox_id, req.release)

    async def renew_all(self, req: m.LeasesRequest) -> m.LeasesRenewed:
        renewed, missing = self.manager.renew_all(req.sandbox_ids)
        return m.LeasesRenewed(renewed=renewed, missing=missing)

    async def stats(self) -> m.ManagerStats:
        return self.manager.stats()

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
        agent = await stack.enter_async_context(self.manager.use(sandbox_id, "stream"))
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
        async with self.manager.use(sandbox_id, "upload") as agent:
            msg = await agent.upload(_header("upload", req), chunks)
        return m.TransferResult(path=req.path, size=msg["size"])

    async def download(self, sandbox_id: str, req: m.DownloadRequest) -> AsyncIterator[bytes]:
        stack = contextlib.AsyncExitStack()
        agent = await stack.enter_async_context(self.manager.use(sandbox_id, "download"))
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

    # ---- snapshots ----------------------------------------------------------------------------

    async def snapshot(self, sandbox_id: str, req: m.SnapshotRequest) -> m.SandboxSnapshot:
        return await self.manager.snapshot(sandbox_id, req)

    async def snapshot_info(self, snapshot_id: str) -> m.SandboxSnapshot:
        return self.manager.get_snapshot(snapshot_id)

    async def list_snapshots(self, req: m.SnapshotQuery) -> m.SnapshotList:
        return m.SnapshotList(snapshots=self.manager.list_snapshots(req.name, req.sandbox_id))

    async def delete_snapshot(self, snapshot_id: str) -> m.SandboxSnapshot:
        return await self.manager.delete_snapshot(snapshot_id)

    # ---- env hosting --------------------------------------------------------------------------

    async def open_worker_socket(self, sandbox_id: str, req: m.WorkerRequest) -> socket.socket:
        """The worker's end of a socketpair, for callers that relay frames themselves (the server)."""
        async with self.manager.use(sandbox_id, "open_worker") as agent:
            return await agent.open_worker(req.argv, req.env)

    async def open_worker(self, sandbox_id: str, req: m.WorkerRequest) -> WorkerChannel:
        entry = self.manager.hold(sandbox_id, "open_worker")
        try:
            sock = await self.open_worker_socket(sandbox_id, req)
        except BaseException:
            self.manager.release(entry)
            raise
        return SocketChannel(sock, on_close=lambda: self.manager.release(entry))

    async def aclose(self) -> None:
        self._handles -= 1
        if self._handles > 0:
            return
        if self._shared_in is not None:
            self._shared_in.pop(self._runtime_dir, None)
        if self.owns_manager:
            await self.manager.close()


# Per event loop (its asyncio objects belong to one loop), then per runtime dir.
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str | None, LocalSandboxAPI]] = (
    weakref.WeakKeyDictionary()
)


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
