"""How the SDK reaches one sandbox: the manager in this process, or a server. Same methods, same errors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, AsyncIterator

from ..manager import SandboxManager
from ..models import (
    CommandResult,
    FileList,
    JobInfo,
    JobList,
    JobLogs,
    JobRequest,
    RunRequest,
    SandboxInfo,
    SandboxSpec,
    SessionRequest,
    TransferResult,
)
from ..ops import Ops
from .worker import SocketChannel, WorkerChannel


class Backend(ABC):
    """Bound to one sandbox once ``create`` returned. ``close`` releases the transport, not the sandbox."""

    sid: str = ""

    @abstractmethod
    async def create(self, spec: SandboxSpec, timeout: float) -> SandboxInfo: ...
    @abstractmethod
    async def info(self) -> SandboxInfo: ...
    @abstractmethod
    async def delete(self) -> None: ...
    @abstractmethod
    async def create_session(self, req: SessionRequest) -> None: ...
    @abstractmethod
    async def close_session(self, name: str) -> None: ...
    @abstractmethod
    async def run(self, req: RunRequest) -> CommandResult: ...
    @abstractmethod
    def run_stream(self, req: RunRequest) -> AsyncIterator[dict[str, Any]]: ...
    @abstractmethod
    async def start_job(self, req: JobRequest) -> JobInfo: ...
    @abstractmethod
    async def job(self, job_id: str) -> JobInfo: ...
    @abstractmethod
    async def list_jobs(self) -> JobList: ...
    @abstractmethod
    async def wait_job(self, job_id: str, timeout: float) -> JobInfo: ...
    @abstractmethod
    async def job_logs(self, job_id: str, stream: str, offset: int, limit: int | None) -> JobLogs: ...
    @abstractmethod
    async def kill_job(self, job_id: str) -> JobInfo: ...
    @abstractmethod
    async def write_file(self, path: str, data: bytes, mode: int | None) -> TransferResult: ...
    @abstractmethod
    async def list_files(self, path: str, recursive: bool) -> FileList: ...
    @abstractmethod
    async def delete_file(self, path: str, recursive: bool) -> None: ...
    @abstractmethod
    async def upload(self, path: str, chunks: AsyncIterator[bytes], tar: bool, mode: int | None) -> TransferResult: ...
    @abstractmethod
    async def download(self, path: str, tar: bool) -> AsyncIterator[bytes]: ...
    @abstractmethod
    async def open_worker(self, argv: list[str], env: dict[str, str] | None) -> WorkerChannel: ...
    @abstractmethod
    async def close(self) -> None: ...


class EmbeddedBackend(Backend):
    """A private :class:`SandboxManager` in this process (one per ``Sandbox``: no shared loop state)."""

    def __init__(self, runtime_dir: str | None = None, manager: SandboxManager | None = None):
        self.own = manager is None
        self.manager = manager or SandboxManager(runtime_dir=runtime_dir)
        self.ops = Ops(self.manager)

    async def create(self, spec: SandboxSpec, timeout: float) -> SandboxInfo:
        info = await self.manager.create(spec, timeout)
        self.sid = info.id
        return info

    async def info(self) -> SandboxInfo:
        return self.manager.info(self.sid)

    async def delete(self) -> None:
        await self.manager.delete(self.sid)

    async def create_session(self, req: SessionRequest) -> None:
        await self.ops.create_session(self.sid, req)

    async def close_session(self, name: str) -> None:
        await self.ops.close_session(self.sid, name)

    async def run(self, req: RunRequest) -> CommandResult:
        return await self.ops.run(self.sid, req)

    async def run_stream(self, req: RunRequest) -> AsyncIterator[dict[str, Any]]:  # type: ignore[override]
        async for event in await self.ops.run_stream(self.sid, req):
            yield event

    async def start_job(self, req: JobRequest) -> JobInfo:
        return await self.ops.start_job(self.sid, req)

    async def job(self, job_id: str) -> JobInfo:
        return await self.ops.job(self.sid, job_id)

    async def list_jobs(self) -> JobList:
        return await self.ops.list_jobs(self.sid)

    async def wait_job(self, job_id: str, timeout: float) -> JobInfo:
        return await self.ops.wait_job(self.sid, job_id, timeout)

    async def job_logs(self, job_id: str, stream: str, offset: int, limit: int | None) -> JobLogs:
        return await self.ops.job_logs(self.sid, job_id, stream, offset, limit)

    async def kill_job(self, job_id: str) -> JobInfo:
        return await self.ops.kill_job(self.sid, job_id)

    async def write_file(self, path: str, data: bytes, mode: int | None) -> TransferResult:
        return await self.ops.write_file(self.sid, path, data, mode)

    async def list_files(self, path: str, recursive: bool) -> FileList:
        return await self.ops.list_files(self.sid, path, recursive)

    async def delete_file(self, path: str, recursive: bool) -> None:
        await self.ops.delete_file(self.sid, path, recursive)

    async def upload(self, path: str, chunks: AsyncIterator[bytes], tar: bool, mode: int | None) -> TransferResult:
        return await self.ops.upload(self.sid, path, chunks, tar, mode)

    async def download(self, path: str, tar: bool) -> AsyncIterator[bytes]:
        return await self.ops.download(self.sid, path, tar)

    async def open_worker(self, argv: list[str], env: dict[str, str] | None) -> WorkerChannel:
        return SocketChannel(await self.manager.open_worker(self.sid, argv, env))

    async def close(self) -> None:
        if self.own:
            await self.manager.close()
