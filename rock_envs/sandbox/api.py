"""The one interface to sandboxes: every operation is one request model in and one response model out.

Two implementations, and only two: :class:`~rock_envs.sandbox.local.LocalSandboxAPI` (a manager in
this process; the only code that talks to a sandbox's agent) and
:class:`~rock_envs.sandbox.sdk.http.HttpSandboxAPI` (the same calls against ``rock-envs serve``,
whose routes are one line each over the local one). Both raise the same errors
(:mod:`rock_envs.sandbox.errors`), so the SDK behaves alike embedded and against a server.

Every operation on one sandbox takes its id first. Errors every one of them may raise, besides
those listed on it: :class:`SandboxNotFoundError` (no such sandbox: stopped, reaped or never made),
:class:`SandboxDiedError` (its agent is gone; the sandbox is marked ``dead``), and, over HTTP,
:class:`AuthenticationError` and :class:`SandboxError` when the server cannot be reached.

Adding an operation: its request and response models (``models.py``), one abstract method here,
one method in each implementation, one route.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import AsyncIterator

from . import models as m
from .sdk.worker import WorkerChannel


class SandboxAPI(ABC):
    """What can be done to sandboxes. ``aclose()`` releases the implementation's own resources."""

    # ---- lifecycle ----------------------------------------------------------------------------

    @abstractmethod
    async def create(self, spec: m.SandboxSpec, timeout: float = 60.0) -> m.SandboxInfo:
        """Start a sandbox; returns once its agent answers (status ``running``).

        Raises: :class:`SandboxStartError` if the runtime cannot start it within ``timeout``;
        :class:`SandboxLimitError` over a cap; :class:`InvalidRequestError` for a runtime not enabled."""

    @abstractmethod
    async def info(self, sandbox_id: str) -> m.SandboxInfo:
        """The sandbox's status, spec and times, as now."""

    @abstractmethod
    async def list(self, req: m.ListRequest) -> m.SandboxList:
        """The sandboxes matching every filter of ``req`` (none: all)."""

    @abstractmethod
    async def delete(self, sandbox_id: str) -> m.SandboxInfo:
        """Remove the sandbox and everything running in it; answers its last info (status ``stopped``)."""

    # ---- warm pools, leases, counts ------------------------------------------------------------

    @abstractmethod
    async def create_pool(self, req: m.PoolRequest) -> m.PoolStats:
        """Start a warm pool and its ``size`` members; returns when they are ready.

        Raises: :class:`SandboxStartError` (e.g. a missing image) if a member cannot start, naming the
        pool; :class:`InvalidRequestError` for a name in use or ``size`` over ``max_size``."""

    @abstractmethod
    async def list_pools(self) -> m.PoolList:
        """Every pool, with its counts (ready, starting, claimed, claims, misses, refill latency)."""

    @abstractmethod
    async def delete_pool(self, name: str) -> m.PoolStats:
        """Remove the pool's ready members; claimed ones stay with their users."""

    @abstractmethod
    async def claim(self, req: m.ClaimRequest) -> m.SandboxInfo:
        """A running sandbox from pool ``req.pool``, under a new id.

        Raises: :class:`SandboxLimitError` if every member up to ``max_size`` is claimed for ``req.timeout``."""

    @abstractmethod
    async def recycle(self, sandbox_id: str) -> m.SandboxInfo:
        """Reset a pool's sandbox and give it back (status ``pooled``), or remove it (``stopped``)
        if the reset left anything of its user; the id no longer reaches it either way."""

    @abstractmethod
    async def renew(self, sandbox_id: str, req: m.LeaseRequest) -> m.SandboxInfo:
        """Renew the sandbox's owner lease (``spec.lease``) from now, or drop it (``req.release``)."""

    @abstractmethod
    async def renew_all(self, req: m.LeasesRequest) -> m.LeasesRenewed:
        """Renew the owner leases of ``req.sandbox_ids`` from now, in one call; unknown ids are
        listed as ``missing``, not an error (one stopped sandbox must not fail the others)."""

    @abstractmethod
    async def stats(self) -> m.ManagerStats:
        """How many sandboxes are starting, running, pooled, dead, queued, and swept since start."""

    # ---- sessions and commands ----------------------------------------------------------------

    @abstractmethod
    async def create_session(self, sandbox_id: str, req: m.SessionRequest) -> m.SessionRef:
        """Start a bash session whose state (cwd, variables) persists across commands.

        Raises: :class:`SessionExistsError` if the name is taken."""

    @abstractmethod
    async def close_session(self, sandbox_id: str, req: m.SessionRef) -> m.SessionRef:
        """End a session and its processes. Raises: :class:`SessionNotFoundError`."""

    @abstractmethod
    async def run(self, sandbox_id: str, req: m.RunRequest) -> m.CommandResult:
        """Run a command to its end (or its timeout: processes killed, ``timed_out`` set, output so far).

        Raises: :class:`SessionNotFoundError` for an unknown ``req.session``."""

    @abstractmethod
    async def run_stream(self, sandbox_id: str, req: m.RunRequest) -> AsyncIterator[m.CommandEvent]:
        """As :meth:`run`, as an iterator of ``{"type": "chunk", "stream", "data"}`` events as output
        arrives and ``{"type": "result", **m.CommandResult}`` last. An unknown or dead sandbox raises from
        this call; the command's own errors (an unknown session) from the iterator."""

    # ---- jobs ---------------------------------------------------------------------------------

    @abstractmethod
    async def start_job(self, sandbox_id: str, req: m.JobRequest) -> m.JobInfo:
        """Start a command in the background; it outlives the call. Answers at once."""

    @abstractmethod
    async def job(self, sandbox_id: str, req: m.JobRef) -> m.JobInfo:
        """A job's status now. Raises: :class:`JobNotFoundError`."""

    @abstractmethod
    async def list_jobs(self, sandbox_id: str) -> m.JobList:
        """Every job the sandbox started, running or ended."""

    @abstractmethod
    async def wait_job(self, sandbox_id: str, req: m.WaitJobRequest) -> m.JobInfo:
        """Wait for a job to end. Raises: :class:`JobNotFoundError`; :class:`CommandTimeoutError` past
        ``req.timeout`` (the job goes on)."""

    @abstractmethod
    async def job_logs(self, sandbox_id: str, req: m.JobLogsRequest) -> m.JobLogs:
        """Log text from ``req.offset``. Raises: :class:`JobNotFoundError`."""

    @abstractmethod
    async def kill_job(self, sandbox_id: str, req: m.JobRef) -> m.JobInfo:
        """Kill a job's process group. Raises: :class:`JobNotFoundError`."""

    # ---- files --------------------------------------------------------------------------------

    @abstractmethod
    async def list_files(self, sandbox_id: str, req: m.FileQuery) -> m.FileList:
        """The entries under a path. Raises: :class:`SandboxFileNotFoundError`, :class:`PathOutsideSandboxError`."""

    @abstractmethod
    async def delete_file(self, sandbox_id: str, req: m.FileQuery) -> m.TransferResult:
        """Remove a file (a directory with ``recursive``). Raises as :meth:`list_files`."""

    @abstractmethod
    async def upload(self, sandbox_id: str, req: m.UploadRequest, chunks: AsyncIterator[bytes]) -> m.TransferResult:
        """Write ``chunks`` to ``req.path`` (or extract them there as a tar), streamed: never whole in
        memory. Raises: :class:`PathOutsideSandboxError`, :class:`PayloadTooLargeError` over a server cap."""

    @abstractmethod
    async def download(self, sandbox_id: str, req: m.DownloadRequest) -> AsyncIterator[bytes]:
        """The file's bytes (a directory's tar with ``req.tar``) as chunks. Errors such as a missing file
        raise from this call, before any chunk. Raises: :class:`SandboxFileNotFoundError`."""

    async def write_file(self, sandbox_id: str, req: m.UploadRequest, data: bytes) -> m.TransferResult:
        """:meth:`upload` of bytes already in memory."""

        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.upload(sandbox_id, req, one())

    # ---- snapshots ----------------------------------------------------------------------------

    @abstractmethod
    async def snapshot(self, sandbox_id: str, req: m.SnapshotRequest) -> m.SandboxSnapshot:
        """Capture the sandbox's filesystem changes (with ``req.memory``, its processes too) as a new
        snapshot; ``create`` with ``spec.snapshot`` starts sandboxes from it.

        Raises: :class:`CheckpointUnavailableError` for ``memory`` where process checkpoints cannot work."""

    @abstractmethod
    async def snapshot_info(self, snapshot_id: str) -> m.SandboxSnapshot:
        """One snapshot. Raises: :class:`SnapshotNotFoundError`."""

    @abstractmethod
    async def list_snapshots(self, req: m.SnapshotQuery) -> m.SnapshotList:
        """The snapshots matching every filter of ``req`` (none: all), oldest first."""

    @abstractmethod
    async def delete_snapshot(self, snapshot_id: str) -> m.SandboxSnapshot:
        """Remove a snapshot (sandboxes made from it go on). Raises: :class:`SnapshotNotFoundError`."""

    # ---- env hosting --------------------------------------------------------------------------

    @abstractmethod
    async def open_worker(self, sandbox_id: str, req: m.WorkerRequest) -> WorkerChannel:
        """Start an env worker in the sandbox and return a framed channel to it. The sandbox counts as
        in use (never reaped) until the channel closes."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release this implementation's resources (connections; an owned manager and its sandboxes)."""
