"""Typed operations on one sandbox, on top of the manager: what both the server routes and the embedded SDK call."""

from __future__ import annotations

import codecs
from typing import Any, AsyncIterator

from .manager import SandboxManager
from .models import (
    CommandResult,
    FileEntry,
    FileList,
    JobInfo,
    JobList,
    JobLogs,
    JobRequest,
    RunRequest,
    SessionRequest,
    TransferResult,
)

Event = dict[str, Any]


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class Ops:
    def __init__(self, manager: SandboxManager):
        self.m = manager

    async def create_session(self, sid: str, req: SessionRequest) -> dict[str, str]:
        await self.m.request(sid, _clean({"op": "session.create", "session": req.session, "env": req.env, "cwd": req.cwd}))
        return {"session": req.session}

    async def close_session(self, sid: str, name: str) -> dict[str, str]:
        await self.m.request(sid, {"op": "session.close", "session": name})
        return {"session": name}

    def _exec(self, req: RunRequest, stream: bool) -> dict[str, Any]:
        return _clean({"op": "exec", "cmd": req.cmd, "session": req.session, "timeout": req.timeout,
                       "limit": req.max_output, "env": req.env, "cwd": req.cwd, "stream": stream})  # fmt: skip

    async def run(self, sid: str, req: RunRequest) -> CommandResult:
        msg, _ = await self.m.request(sid, self._exec(req, False))
        return _result(msg)

    async def run_stream(self, sid: str, req: RunRequest) -> AsyncIterator[Event]:
        """Events ``{"type": "chunk", "stream", "data"}`` as output arrives, then ``{"type": "result", ...}``."""
        entry = self.m.get(sid, "stream")
        header = self._exec(req, True)
        decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")}

        async def events() -> AsyncIterator[Event]:
            async def one(agent: Any) -> AsyncIterator[Event]:
                async for msg, data in agent.messages(header, timeout=req.timeout + 60):
                    if msg.get("t") == "chunk":
                        stream = str(msg.get("stream"))
                        text = decoders[stream].decode(data)
                        if text:
                            yield {"type": "chunk", "stream": stream, "data": text}
                    else:
                        yield {"type": "result", **_result(msg).model_dump()}

            if entry.agent is None:
                return
            entry.busy += 1
            try:
                async for event in one(entry.agent):
                    yield event
            finally:
                entry.busy -= 1

        return events()

    async def start_job(self, sid: str, req: JobRequest) -> JobInfo:
        msg, _ = await self.m.request(sid, _clean({"op": "job.start", "cmd": req.cmd, "env": req.env, "cwd": req.cwd}))
        return _job(msg)

    async def job(self, sid: str, job_id: str) -> JobInfo:
        msg, _ = await self.m.request(sid, {"op": "job.info", "job_id": job_id})
        return _job(msg)

    async def list_jobs(self, sid: str) -> JobList:
        msg, _ = await self.m.request(sid, {"op": "job.list"})
        return JobList(jobs=[_job(j) for j in msg["jobs"]])

    async def wait_job(self, sid: str, job_id: str, timeout: float) -> JobInfo:
        msg, _ = await self.m.request(sid, {"op": "job.wait", "job_id": job_id, "timeout": timeout})
        return _job(msg)

    async def job_logs(self, sid: str, job_id: str, stream: str, offset: int, limit: int | None) -> JobLogs:
        msg, data = await self.m.request(sid, _clean({"op": "job.logs", "job_id": job_id, "stream": stream,
                                                      "offset": offset, "limit": limit}))  # fmt: skip
        return JobLogs(job=_job(msg), stream=stream, offset=msg["offset"], next_offset=msg["next_offset"],  # type: ignore[arg-type]
                       data=data.decode("utf-8", errors="replace"))  # fmt: skip

    async def kill_job(self, sid: str, job_id: str) -> JobInfo:
        msg, _ = await self.m.request(sid, {"op": "job.kill", "job_id": job_id})
        return _job(msg)

    async def read_file(self, sid: str, path: str, offset: int = 0, length: int = -1) -> bytes:
        _, data = await self.m.request(sid, {"op": "file.read", "path": path, "offset": offset, "length": length})
        return data

    async def write_file(self, sid: str, path: str, data: bytes, mode: int | None = None) -> TransferResult:
        msg, _ = await self.m.request(sid, _clean({"op": "file.write", "path": path, "mode": mode}), data)
        return TransferResult(path=path, size=msg["size"])

    async def list_files(self, sid: str, path: str, recursive: bool) -> FileList:
        msg, _ = await self.m.request(sid, {"op": "file.list", "path": path, "recursive": recursive})
        return FileList(entries=[FileEntry(**e) for e in msg["entries"]])

    async def delete_file(self, sid: str, path: str, recursive: bool) -> TransferResult:
        await self.m.request(sid, {"op": "file.delete", "path": path, "recursive": recursive})
        return TransferResult(path=path, size=0)

    async def upload(self, sid: str, path: str, chunks: AsyncIterator[bytes], tar: bool = False,
                     mode: int | None = None) -> TransferResult:  # fmt: skip
        msg = await self.m.upload(sid, path, chunks, tar, mode)
        return TransferResult(path=path, size=msg["size"])

    async def download(self, sid: str, path: str, tar: bool = False) -> AsyncIterator[bytes]:
        return await self.m.download(sid, path, tar)


def _result(msg: dict[str, Any]) -> CommandResult:
    return CommandResult(output=msg["output"], stderr=msg["stderr"], exit_code=msg["exit_code"],
                         timed_out=msg["timed_out"], truncated=msg.get("truncated", False), note=msg.get("note", ""))  # fmt: skip


def _job(msg: dict[str, Any]) -> JobInfo:
    return JobInfo(**{k: msg[k] for k in JobInfo.model_fields})
