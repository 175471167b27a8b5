"""The HTTP implementation of :class:`SandboxAPI`: each operation one request to ``rock-envs serve``."""

from __future__ import annotations

import json
from typing import AsyncIterator

from .. import models as m
from ..api import SandboxAPI
from ..errors import from_wire
from .mux import WorkerMux
from .server_client import ServerClient
from .worker import WorkerChannel


def _at(sandbox_id: str, suffix: str = "") -> str:
    return f"/sandboxes/{sandbox_id}{suffix}"


class HttpSandboxAPI(SandboxAPI):
    """Sandboxes of one server. ``client`` is shared when given (and then not closed by :meth:`aclose`)."""

    def __init__(self, client: ServerClient, *, owns_client: bool = False):
        self.client, self.owns_client = client, owns_client
        self.mux: WorkerMux | None = None

    @classmethod
    def connect(cls, base_url: str, token: str | None = None, timeout: float = 60.0) -> HttpSandboxAPI:
        return cls(ServerClient(base_url, token, timeout=timeout), owns_client=True)

    async def create(self, spec: m.SandboxSpec, timeout: float = 60.0) -> m.SandboxInfo:
        return await self.client.call("POST", "/sandboxes", "start", m.SandboxInfo, body=spec, extra_timeout=timeout)

    async def info(self, sandbox_id: str) -> m.SandboxInfo:
        return await self.client.call("GET", _at(sandbox_id), "status", m.SandboxInfo)

    async def list(self, req: m.ListRequest) -> m.SandboxList:
        labels = [f"{k}={v}" for k, v in req.labels.items()]
        params = {"status": req.status, "runtime": req.runtime, "label": labels}
        return await self.client.call("GET", "/sandboxes", "list", m.SandboxList, params=params)

    async def delete(self, sandbox_id: str) -> m.SandboxInfo:
        return await self.client.call("DELETE", _at(sandbox_id), "stop", m.SandboxInfo)

    async def create_pool(self, req: m.PoolRequest) -> m.PoolStats:
        return await self.client.call("POST", "/pools", "create_pool", m.PoolStats, body=req)

    async def list_pools(self) -> m.PoolList:
        return await self.client.call("GET", "/pools", "list_pools", m.PoolList)

    async def delete_pool(self, name: str) -> m.PoolStats:
        return await self.client.call("DELETE", f"/pools/{name}", "delete_pool", m.PoolStats)

    async def claim(self, req: m.ClaimRequest) -> m.SandboxInfo:
        return await self.client.call("POST", f"/pools/{req.pool}/claim", "claim", m.SandboxInfo, body=req)

    async def renew_all(self, req: m.LeasesRequest) -> m.LeasesRenewed:
        return await self.client.call("POST", "/leases", "renew_all", m.LeasesRenewed, body=req)

    async def recycle(self, sandbox_id: str) -> m.SandboxInfo:
        return await self.client.call("POST", _at(sandbox_id, "/recycle"), "recycle", m.SandboxInfo)

    async def renew(self, sandbox_id: str, req: m.LeaseRequest) -> m.SandboxInfo:
        return await self.client.call("POST", _at(sandbox_id, "/lease"), "renew", m.SandboxInfo, body=req)

    async def stats(self) -> m.ManagerStats:
        return await self.client.call("GET", "/stats", "stats", m.ManagerStats)

    async def create_session(self, sandbox_id: str, req: m.SessionRequest) -> m.SessionRef:
        return await self.client.call("POST", _at(sandbox_id, "/sessions"), "create_session", m.SessionRef, body=req)

    async def close_session(self, sandbox_id: str, req: m.SessionRef) -> m.SessionRef:
        return await self.client.call(
            "DELETE", _at(sandbox_id, f"/sessions/{req.session}"), "close_session", m.SessionRef
        )

    async def run(self, sandbox_id: str, req: m.RunRequest) -> m.CommandResult:
        return await self.client.call(
            "POST", _at(sandbox_id, "/commands"), "arun", m.CommandResult, body=req, extra_timeout=req.timeout
        )

    async def run_stream(self, sandbox_id: str, req: m.RunRequest) -> AsyncIterator[m.CommandEvent]:
        response = await self.client.stream(
            "POST", _at(sandbox_id, "/commands/stream"), "stream", body=req, timeout=self.client.timeout + req.timeout
        )

        async def events() -> AsyncIterator[m.CommandEvent]:
            try:
                async for line in response.aiter_lines():
                    if not line:
                        continue
                    event = json.loads(line)
                    if event.get("type") == "error":
                        failure = m.ErrorEvent.model_validate(event).error
                        raise from_wire(failure.type, failure.message)
                    yield event
            finally:
                await response.aclose()

        return events()

    async def start_job(self, sandbox_id: str, req: m.JobRequest) -> m.JobInfo:
        return await self.client.call("POST", _at(sandbox_id, "/jobs"), "run_job", m.JobInfo, body=req)

    async def job(self, sandbox_id: str, req: m.JobRef) -> m.JobInfo:
        return await self.client.call("GET", _at(sandbox_id, f"/jobs/{req.job_id}"), "poll_job", m.JobInfo)

    async def list_jobs(self, sandbox_id: str) -> m.JobList:
        return await self.client.call("GET", _at(sandbox_id, "/jobs"), "list_jobs", m.JobList)

    async def wait_job(self, sandbox_id: str, req: m.WaitJobRequest) -> m.JobInfo:
        return await self.client.call(
            "POST",
            _at(sandbox_id, f"/jobs/{req.job_id}/wait"),
            "wait_job",
            m.JobInfo,
            params={"timeout": req.timeout},
            extra_timeout=req.timeout,
        )

    async def job_logs(self, sandbox_id: str, req: m.JobLogsRequest) -> m.JobLogs:
        return await self.client.call(
            "GET",
            _at(sandbox_id, f"/jobs/{req.job_id}/logs"),
            "job_logs",
            m.JobLogs,
            params=req.model_dump(exclude={"job_id"}),
        )

    async def kill_job(self, sandbox_id: str, req: m.JobRef) -> m.JobInfo:
        return await self.client.call("POST", _at(sandbox_id, f"/jobs/{req.job_id}/kill"), "kill_job", m.JobInfo)

    async def list_files(self, sandbox_id: str, req: m.FileQuery) -> m.FileList:
        return await self.client.call(
            "GET", _at(sandbox_id, "/files"), "list_files", m.FileList, params=req.model_dump()
        )

    async def delete_file(self, sandbox_id: str, req: m.FileQuery) -> m.TransferResult:
        return await self.client.call(
            "DELETE", _at(sandbox_id, "/files"), "delete_file", m.TransferResult, params=req.model_dump()
        )

    async def upload(self, sandbox_id: str, req: m.UploadRequest, chunks: AsyncIterator[bytes]) -> m.TransferResult:
        return await self.client.call(
            "PUT",
            _at(sandbox_id, "/files/tar" if req.tar else "/files/content"),
            "upload",
            m.TransferResult,
            params=req.model_dump(exclude={"tar"}),
            content=chunks,
        )

    async def download(self, sandbox_id: str, req: m.DownloadRequest) -> AsyncIterator[bytes]:
        response = await self.client.stream(
            "GET", _at(sandbox_id, "/files/tar" if req.tar else "/files/content"), "download", params={"path": req.path}
        )

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:
                await response.aclose()

        return chunks()

    async def snapshot(self, sandbox_id: str, req: m.SnapshotRequest) -> m.SandboxSnapshot:
        return await self.client.call(
            "POST", _at(sandbox_id, "/snapshots"), "snapshot", m.SandboxSnapshot, body=req, extra_timeout=600
        )

    async def snapshot_info(self, snapshot_id: str) -> m.SandboxSnapshot:
        return await self.client.call("GET", f"/snapshots/{snapshot_id}", "snapshot_info", m.SandboxSnapshot)

    async def list_snapshots(self, req: m.SnapshotQuery) -> m.SnapshotList:
        params = req.model_dump(exclude_none=True)
        return await self.client.call("GET", "/snapshots", "list_snapshots", m.SnapshotList, params=params)

    async def delete_snapshot(self, snapshot_id: str) -> m.SandboxSnapshot:
        return await self.client.call("DELETE", f"/snapshots/{snapshot_id}", "delete_snapshot", m.SandboxSnapshot)

    async def open_worker(self, sandbox_id: str, req: m.WorkerRequest) -> WorkerChannel:
        if self.mux is None:
            self.mux = WorkerMux(self.client.base_url, self.client.headers)
        return await self.mux.open(sandbox_id, req.argv, req.env)

    async def aclose(self) -> None:
        mux, self.mux = self.mux, None
        if mux is not None:
            await mux.close()
        if self.owns_client:
            await self.client.aclose()
