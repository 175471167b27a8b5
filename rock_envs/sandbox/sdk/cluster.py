"""``ClusterSandboxAPI``: the SDK against a split server, a control plane and its data replicas.

Lifecycle calls (create, delete, pools, claims, leases, snapshots, counts, ``list``) go to the
control plane. Every call on one sandbox (status, sessions, commands, jobs, files, env workers) goes
to one data replica, the sandbox's own by rendezvous hashing of its id over the replicas' URLs: the
sandboxes spread evenly, each keeps its replica (whose connections to its agent stay warm), and when
a replica goes away only its sandboxes move, each to its next choice.

A replica that cannot be reached is passed over for ``SKIP_FOR`` seconds and the call goes to the
next: always when the request was never sent (the connection was refused), and for calls that
change nothing (reads, waits, downloads) also when the replica died with the call in flight. A call
that changes something and was cut off mid-way (a command may have run) raises
:class:`ServerUnreachableError` rather than run twice.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import httpx

from .. import models as m
from ..api import SandboxAPI
from ..errors import ServerUnreachableError
from ..model_service.upstreams import UpstreamRouter
from .http import HttpSandboxAPI
from .worker import WorkerChannel

T = TypeVar("T")
SKIP_FOR = 5.0
"""Seconds a replica that failed is passed over (unless every replica is)."""
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, ConnectionRefusedError)  # a WebSocket's: OSError


class ClusterSandboxAPI(SandboxAPI):
    """``control`` for lifecycle calls, ``replicas`` for the rest (closed by :meth:`aclose`)."""

    def __init__(self, control: HttpSandboxAPI, replicas: list[HttpSandboxAPI]):
        if not replicas:
            raise ValueError("ClusterSandboxAPI needs at least one data replica")
        self.control = control
        self.replicas = {api.client.base_url: api for api in replicas}
        self.router = UpstreamRouter(skip_for=SKIP_FOR)

    @classmethod
    def connect(
        cls, control_url: str, data_urls: list[str], token: str | None = None, timeout: float = 60.0
    ) -> ClusterSandboxAPI:
        control = HttpSandboxAPI.connect(control_url, token, timeout)
        return cls(control, [HttpSandboxAPI.connect(url, token, timeout) for url in data_urls])

    def replica_for(self, sandbox_id: str) -> str:
        """The URL of the replica that serves ``sandbox_id`` now."""
        return self.router.order(list(self.replicas), sandbox_id)[0]

    async def _data(self, sandbox_id: str, call: Callable[[HttpSandboxAPI], Awaitable[T]], replay: bool = False) -> T:
        """``call`` on the sandbox's replica, then on the next ones while they cannot be reached."""
        last: ServerUnreachableError | None = None
        for url in self.router.order(list(self.replicas), sandbox_id):
            try:
                result = await call(self.replicas[url])
            except ServerUnreachableError as exc:
                self.router.failed(url)
                if not (replay or isinstance(exc.__cause__, NOT_SENT)):
                    raise  # cut off mid-way: it may have run; never run it twice
                last = exc
                continue
            self.router.worked(url)
            return result
        assert last is not None
        raise last

    # ---- lifecycle: the control plane ---------------------------------------------------------

    async def create(self, spec: m.SandboxSpec, timeout: float = 60.0) -> m.SandboxInfo:
        return await self.control.create(spec, timeout)

    async def list(self, req: m.ListRequest) -> m.SandboxList:
        return await self.control.list(req)

    async def delete(self, sandbox_id: str) -> m.SandboxInfo:
        return await self.control.delete(sandbox_id)

    async def create_pool(self, req: m.PoolRequest) -> m.PoolStats:
        return await self.control.create_pool(req)

    async def list_pools(self) -> m.PoolList:
        return await self.control.list_pools()

    async def delete_pool(self, name: str) -> m.PoolStats:
        return await self.control.delete_pool(name)

    async def claim(self, req: m.ClaimRequest) -> m.SandboxInfo:
        return await self.control.claim(req)

    async def recycle(self, sandbox_id: str) -> m.SandboxInfo:
        return await self.control.recycle(sandbox_id)

    async def renew(self, sandbox_id: str, req: m.LeaseRequest) -> m.SandboxInfo:
        return await self.control.renew(sandbox_id, req)

    async def renew_all(self, req: m.LeasesRequest) -> m.LeasesRenewed:
        return await self.control.renew_all(req)

    async def stats(self) -> m.ManagerStats:
        return await self.control.stats()

    async def snapshot(self, sandbox_id: str, req: m.SnapshotRequest) -> m.SandboxSnapshot:
        return await self.control.snapshot(sandbox_id, req)

    async def snapshot_info(self, snapshot_id: str) -> m.SandboxSnapshot:
        return await self.control.snapshot_info(snapshot_id)

    async def list_snapshots(self, req: m.SnapshotQuery) -> m.SnapshotList:
        return await self.control.list_snapshots(req)

    async def delete_snapshot(self, snapshot_id: str) -> m.SandboxSnapshot:
        return await self.control.delete_snapshot(snapshot_id)

    # ---- one sandbox: its replica -------------------------------------------------------------

    async def info(self, sandbox_id: str) -> m.SandboxInfo:
        return await self._data(sandbox_id, lambda api: api.info(sandbox_id), replay=True)

    async def create_session(self, sandbox_id: str, req: m.SessionRequest) -> m.SessionRef:
        return await self._data(sandbox_id, lambda api: api.create_session(sandbox_id, req))

    async def close_session(self, sandbox_id: str, req: m.SessionRef) -> m.SessionRef:
        return await self._data(sandbox_id, lambda api: api.close_session(sandbox_id, req))

    async def run(self, sandbox_id: str, req: m.RunRequest) -> m.CommandResult:
        return await self._data(sandbox_id, lambda api: api.run(sandbox_id, req))

    async def run_stream(self, sandbox_id: str, req: m.RunRequest) -> AsyncIterator[m.CommandEvent]:
        return await self._data(sandbox_id, lambda api: api.run_stream(sandbox_id, req))

    async def start_job(self, sandbox_id: str, req: m.JobRequest) -> m.JobInfo:
        return await self._data(sandbox_id, lambda api: api.start_job(sandbox_id, req))

    async def job(self, sandbox_id: str, req: m.JobRef) -> m.JobInfo:
        return await self._data(sandbox_id, lambda api: api.job(sandbox_id, req), replay=True)

    async def list_jobs(self, sandbox_id: str) -> m.JobList:
        return await self._data(sandbox_id, lambda api: api.list_jobs(sandbox_id), replay=True)

    async def wait_job(self, sandbox_id: str, req: m.WaitJobRequest) -> m.JobInfo:
        return await self._data(sandbox_id, lambda api: api.wait_job(sandbox_id, req), replay=True)

    async def job_logs(self, sandbox_id: str, req: m.JobLogsRequest) -> m.JobLogs:
        return await self._data(sandbox_id, lambda api: api.job_logs(sandbox_id, req), replay=True)

    async def kill_job(self, sandbox_id: str, req: m.JobRef) -> m.JobInfo:
        return await self._data(sandbox_id, lambda api: api.kill_job(sandbox_id, req), replay=True)

    async def list_files(self, sandbox_id: str, req: m.FileQuery) -> m.FileList:
        return await self._data(sandbox_id, lambda api: api.list_files(sandbox_id, req), replay=True)

    async def delete_file(self, sandbox_id: str, req: m.FileQuery) -> m.TransferResult:
        return await self._data(sandbox_id, lambda api: api.delete_file(sandbox_id, req))

    async def upload(self, sandbox_id: str, req: m.UploadRequest, chunks: AsyncIterator[bytes]) -> m.TransferResult:
        return await self._data(sandbox_id, lambda api: api.upload(sandbox_id, req, chunks))

    async def write_file(self, sandbox_id: str, req: m.UploadRequest, data: bytes) -> m.TransferResult:
        return await self._data(sandbox_id, lambda api: api.write_file(sandbox_id, req, data), replay=True)

    async def download(self, sandbox_id: str, req: m.DownloadRequest) -> AsyncIterator[bytes]:
        return await self._data(sandbox_id, lambda api: api.download(sandbox_id, req), replay=True)

    async def open_worker(self, sandbox_id: str, req: m.WorkerRequest) -> WorkerChannel:
        return await self._data(sandbox_id, lambda api: api.open_worker(sandbox_id, req))

    async def aclose(self) -> None:
        errors: list[Any] = []
        for api in [self.control, *self.replicas.values()]:
            try:
                await api.aclose()
            except Exception as exc:  # noqa: BLE001 - close the others all the same
                errors.append(exc)
        if errors:
            raise errors[0]
