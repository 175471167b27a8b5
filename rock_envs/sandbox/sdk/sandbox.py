"""``Sandbox``: the async SDK. Embedded when ``config.base_url`` is None, else a client of ``rock-envs serve``."""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Literal, overload

from .. import models as m
from ..api import SandboxAPI
from ..config import SandboxConfig
from ..errors import InvalidRequestError, SandboxClosedError, SandboxNotFoundError
from .leases import LeaseKeeper
from .worker import WorkerChannel

if TYPE_CHECKING:
    from ..model_service.client import ModelService

CHUNK = 1 << 20


@dataclass(frozen=True)
class OutputChunk:
    """A piece of a streamed command's output, as it arrived."""

    stream: Literal["stdout", "stderr"]
    data: str


class Sandbox:
    """One sandbox. ``async with Sandbox(SandboxConfig(...)) as sb:`` starts it and stops it.

    Before ``start()`` (or ``__aenter__``) no method but ``start`` works; after ``stop()`` none does
    (:class:`SandboxClosedError`). Every method that waits takes a ``timeout`` in seconds.
    """

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any):
        base = config or SandboxConfig()
        self.config = base.model_copy(update=overrides) if overrides else base
        if overrides:
            self.config = SandboxConfig(**self.config.model_dump())  # validate the overrides
        self._api: SandboxAPI | None = None  # set from a successful start() (or attach) to stop()
        self._info: m.SandboxInfo | None = None
        self._stopped = False
        self._model_service: ModelService | None = None
        self._keeper: LeaseKeeper | None = None  # renews this handle's lease while it is open

    # ---- lifecycle ----------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._info.id if self._info else ""

    @property
    def info(self) -> m.SandboxInfo | None:
        return self._info

    def _make_api(self) -> SandboxAPI:
        return _api_for(self.config)

    async def start(self) -> Sandbox:
        if self._api is not None:
            return self
        if self._stopped:
            raise SandboxClosedError("`Sandbox.start`: this sandbox was stopped; make a new `Sandbox`.")
        api = self._make_api()
        try:
            if self.config.pool is not None:
                claim = m.ClaimRequest(
                    pool=self.config.pool,
                    labels=self.config.labels,
                    ttl=self.config.ttl,
                    lease=self.config.lease,
                    timeout=self.config.startup_timeout,
                )
                self._info = await api.claim(claim)
            else:
                self._info = await api.create(self.config.spec(), self.config.startup_timeout)
        except BaseException:
            await api.aclose()
            raise
        self._api = api
        self._hold_lease()
        return self

    def _hold_lease(self) -> None:
        """Renew the owner lease while this handle is open, with the loop's other handles of the
        same server (one request for all of them: see `sdk/leases.py`)."""
        lease = self._info.spec.lease if self._info is not None else None
        if lease and self._keeper is None:
            config = self.config
            key = (config.base_url, config.resolve_token() if config.base_url else None, config.runtime_dir)
            self._keeper = LeaseKeeper.of(key, lambda: _api_for(config))
            self._keeper.hold(self.id, lease)

    async def _drop_lease_task(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.drop(self.id)

    async def recycle(self) -> None:
        """Give a sandbox taken from a pool back to it, reset (its processes, sessions, jobs and files
        removed, checked), for the pool's next user; this handle is closed. A sandbox whose reset left
        anything behind is removed instead."""
        api = self._b("recycle")
        await self._drop_lease_task()
        self._api, self._stopped = None, True
        try:
            await api.recycle(self.id)
        finally:
            await api.aclose()

    @classmethod
    async def attach(cls, sandbox_id: str, config: SandboxConfig) -> Sandbox:
        """A handle on an existing sandbox of a server (``config.base_url``). ``detach()`` leaves it running."""
        if config.base_url is None:
            raise InvalidRequestError(
                "`Sandbox.attach`: needs `base_url`; an embedded sandbox lives only in the process that made it."
            )
        sandbox, api = cls(config), _http_api(config)
        try:
            sandbox._info = await api.info(sandbox_id)
        except BaseException:
            await api.aclose()
            raise
        sandbox._api = api
        sandbox._hold_lease()
        return sandbox

    async def detach(self) -> None:
        """Release the connection but leave the sandbox running (its TTL still applies; its owner
        lease is dropped, since nobody renews it any more)."""
        await self._drop_lease_task()
        api, self._api = self._api, None
        self._stopped = True
        if api is not None:
            try:
                if self._info is not None and self._info.spec.lease:
                    await api.renew(self.id, m.LeaseRequest(release=True))
            finally:
                await api.aclose()

    async def stop(self) -> None:
        """Remove the sandbox and everything running in it. Safe to call twice, or after a TTL reaped it."""
        await self._drop_lease_task()
        api, self._api = self._api, None
        self._stopped = True
        if self._model_service is not None:  # its HTTP client; a later `trajectory()` opens a fresh one
            await self._model_service.aclose()
        if api is None:
            return
        try:
            await api.delete(self.id)
        except SandboxNotFoundError:
            pass  # already reaped (TTL) or removed by a restarted server: the goal is met
        finally:
            await api.aclose()

    aclose = stop

    async def __aenter__(self) -> Sandbox:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _b(self, call: str) -> SandboxAPI:
        if self._api is None:
            state = "was stopped" if self._stopped else "is not started"
            raise SandboxClosedError(
                f"`Sandbox.{call}`: the sandbox {state}; use `async with Sandbox(...)` or `await sb.start()` first."
            )
        return self._api

    @property
    def model_service(self) -> ModelService:
        """This sandbox's calls to its OpenAI-compatible endpoint (needs ``model_service`` in the config)."""
        if self._model_service is not None:
            return self._model_service
        api = self._b("model_service")
        if self._info is None or self._info.spec.model_service is None:
            raise InvalidRequestError(
                "`Sandbox.model_service`: this sandbox has no model service; create it with "
                '`SandboxConfig(model_service="trainer")` (or "proxy").'
            )
        if self._model_service is None:  # one per sandbox; it outlives stop() for reading trajectories
            from ..local import LocalSandboxAPI
            from ..model_service.client import ModelService

            if isinstance(api, LocalSandboxAPI):
                self._model_service = ModelService(hub=api.manager.models, sandbox_id=self.id)
            else:
                self._model_service = ModelService(
                    base_url=self.config.base_url, token=self.config.resolve_token(), sandbox_id=self.id
                )
        return self._model_service

    async def status(self) -> m.SandboxInfo:
        self._info = await self._b("status").info(self.id)
        return self._info

    # ---- sessions and commands ----------------------------------------------------------------

    async def create_session(
        self, session: str = "default", env: dict[str, str] | None = None, cwd: str | None = None, **options: Any
    ) -> str:
        """A bash session; ``options`` are :class:`SessionRequest`'s others (``tty``, ``inherit_env``,
        ``source``, ``idle_timeout``, ``user``)."""
        request = m.SessionRequest(session=session, env=env, cwd=cwd, **options)
        await self._b("create_session").create_session(self.id, request)
        return session

    async def close_session(self, session: str) -> None:
        await self._b("close_session").close_session(self.id, m.SessionRef(session=session))

    async def arun(
        self,
        cmd: str,
        session: str | None = None,
        timeout: float = 60.0,
        max_output: int | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> m.CommandResult:
        """Run ``cmd`` in ``session`` (state kept) or alone; on timeout its processes are killed and
        ``timed_out`` is set, with the output so far."""
        req = m.RunRequest(cmd=cmd, session=session, timeout=timeout, max_output=max_output, env=env, cwd=cwd)
        return await self._b("arun").run(self.id, req)

    async def stream(
        self, cmd: str, session: str | None = None, timeout: float = 60.0, max_output: int | None = None
    ) -> AsyncIterator[OutputChunk | m.CommandResult]:
        """Yield :class:`OutputChunk` as output arrives, then the :class:`m.CommandResult`."""
        req = m.RunRequest(cmd=cmd, session=session, timeout=timeout, max_output=max_output)
        async for event in await self._b("stream").run_stream(self.id, req):
            if event.get("type") == "chunk":
                yield OutputChunk(event["stream"], event["data"])
            else:
                yield m.CommandResult(**{k: v for k, v in event.items() if k != "type"})

    # ---- jobs ---------------------------------------------------------------------------------

    async def run_job(self, cmd: str, env: dict[str, str] | None = None, cwd: str | None = None) -> m.JobInfo:
        """Start ``cmd`` in the background; it outlives this call. Returns at once with its ``job_id``."""
        return await self._b("run_job").start_job(self.id, m.JobRequest(cmd=cmd, env=env, cwd=cwd))

    async def poll_job(self, job_id: str) -> m.JobInfo:
        return await self._b("poll_job").job(self.id, m.JobRef(job_id=job_id))

    async def list_jobs(self) -> list[m.JobInfo]:
        return (await self._b("list_jobs").list_jobs(self.id)).jobs

    async def wait_job(self, job_id: str, timeout: float = 60.0) -> m.JobInfo:
        """Wait for the job to end; :class:`CommandTimeoutError` if it runs past ``timeout``."""
        return await self._b("wait_job").wait_job(self.id, m.WaitJobRequest(job_id=job_id, timeout=timeout))

    async def job_logs(
        self, job_id: str, stream: Literal["stdout", "stderr"] = "stdout", offset: int = 0, limit: int | None = None
    ) -> m.JobLogs:
        """Log text from ``offset``; pass ``next_offset`` back to follow it."""
        req = m.JobLogsRequest(job_id=job_id, stream=stream, offset=offset, limit=limit)
        return await self._b("job_logs").job_logs(self.id, req)

    async def kill_job(self, job_id: str) -> m.JobInfo:
        return await self._b("kill_job").kill_job(self.id, m.JobRef(job_id=job_id))

    # ---- files --------------------------------------------------------------------------------

    @overload
    async def read_file(self, path: str, encoding: str = ...) -> str: ...
    @overload
    async def read_file(self, path: str, encoding: None) -> bytes: ...

    async def read_file(self, path: str, encoding: str | None = "utf-8") -> str | bytes:
        """The file's content, decoded with ``encoding`` (``None``: bytes). Paths are relative to the sandbox root."""
        data = bytearray()
        async for chunk in await self._b("read_file").download(self.id, m.DownloadRequest(path=path)):
            data += chunk
        return bytes(data) if encoding is None else data.decode(encoding)

    async def write_file(self, path: str, content: str | bytes, mode: int | None = None) -> m.TransferResult:
        data = content.encode() if isinstance(content, str) else content
        return await self._b("write_file").write_file(self.id, m.UploadRequest(path=path, mode=mode), data)

    async def list_files(self, path: str = ".", recursive: bool = False) -> list[m.FileEntry]:
        return (await self._b("list_files").list_files(self.id, m.FileQuery(path=path, recursive=recursive))).entries

    async def delete_file(self, path: str, recursive: bool = False) -> None:
        await self._b("delete_file").delete_file(self.id, m.FileQuery(path=path, recursive=recursive))

    async def upload(self, local_path: str | os.PathLike[str], remote_path: str) -> m.TransferResult:
        """Copy a local file, or a whole directory (as a tar stream), into the sandbox. Streamed."""
        api = self._b("upload")
        local = os.fspath(local_path)
        if os.path.isdir(local):
            with tempfile.TemporaryFile() as spool:
                with tarfile.open(fileobj=spool, mode="w") as tar:
                    tar.add(local, arcname=".")
                spool.seek(0)
                return await api.upload(self.id, m.UploadRequest(path=remote_path, tar=True), _read_chunks(spool))
        with open(local, "rb") as fh:
            req = m.UploadRequest(path=remote_path, mode=os.stat(local).st_mode & 0o777)
            return await api.upload(self.id, req, _read_chunks(fh))

    async def download(self, remote_path: str, local_path: str | os.PathLike[str]) -> m.TransferResult:
        """Copy a file out of the sandbox, streamed to disk (never whole in memory)."""
        chunks = await self._b("download").download(self.id, m.DownloadRequest(path=remote_path))
        size = 0
        with open(os.fspath(local_path), "wb") as fh:
            async for chunk in chunks:
                fh.write(chunk)
                size += len(chunk)
        return m.TransferResult(path=remote_path, size=size)

    async def download_dir(self, remote_path: str, local_dir: str | os.PathLike[str]) -> m.TransferResult:
        """Copy a directory out of the sandbox (a tar stream, extracted into ``local_dir``)."""
        chunks = await self._b("download_dir").download(self.id, m.DownloadRequest(path=remote_path, tar=True))
        size = 0
        with tempfile.TemporaryFile() as spool:
            async for chunk in chunks:
                spool.write(chunk)
                size += len(chunk)
            spool.seek(0)
            os.makedirs(os.fspath(local_dir), exist_ok=True)
            with tarfile.open(fileobj=spool, mode="r") as tar:
                tar.extractall(os.fspath(local_dir), filter="data")
        return m.TransferResult(path=remote_path, size=size)

    # ---- snapshots ----------------------------------------------------------------------------

    async def snapshot(self, name: str | None = None, memory: bool = False) -> m.SandboxSnapshot:
        """Capture this sandbox's filesystem changes (``memory=True``: its processes too, with CRIU where
        it works; :class:`CheckpointUnavailableError` saying why elsewhere). It outlives the sandbox."""
        return await self._b("snapshot").snapshot(self.id, m.SnapshotRequest(name=name, memory=memory))

    async def fork(self, n: int) -> list[Sandbox]:
        """``n`` new, started sandboxes, each with a copy of this one's files as they are now. They are
        stopped as any sandbox is (``stop()``); the snapshot taken for them is deleted."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidRequestError(f"`Sandbox.fork`: n must be a positive int, got {n!r}.")
        api = self._b("fork")
        snapshot = await api.snapshot(self.id, m.SnapshotRequest(name=f"fork-of-{self.id}"))
        try:
            results = await asyncio.gather(
                *(Sandbox.from_snapshot(snapshot, self.config) for _ in range(n)), return_exceptions=True
            )
        finally:
            await api.delete_snapshot(snapshot.id)
        clones = [r for r in results if isinstance(r, Sandbox)]
        failed = [r for r in results if not isinstance(r, Sandbox)]
        if failed:
            await asyncio.gather(*(c.stop() for c in clones), return_exceptions=True)
            raise failed[0]
        return clones

    @classmethod
    async def from_snapshot(
        cls, snapshot: m.SandboxSnapshot | str, config: SandboxConfig | None = None, **overrides: Any
    ) -> Sandbox:
        """A new, started sandbox with ``config`` (default: ``SandboxConfig()``; its runtime becomes the
        snapshot's) over the snapshot's files (and docker image). Same as ``SandboxConfig(snapshot=...)``."""
        base = config or SandboxConfig()
        if isinstance(snapshot, m.SandboxSnapshot):
            overrides = {"runtime": snapshot.runtime, **overrides}
            snapshot = snapshot.id
        return await cls(base, snapshot=snapshot, **overrides).start()

    @classmethod
    async def restore(cls, snapshot: m.SandboxSnapshot | str, config: SandboxConfig | None = None) -> Sandbox:
        """The sandbox the snapshot was taken from, again (its spec: runtime, limits, env, labels), over
        the snapshot's files: one call to bring back a sandbox that crashed. ``config`` gives where
        (``base_url``, ``token``, ``runtime_dir``), not what."""
        base = config or SandboxConfig()
        if not isinstance(snapshot, m.SandboxSnapshot):
            snapshot = await cls.snapshot_info(snapshot, base)
        return await cls(restore_config(snapshot, base)).start()

    @classmethod
    async def snapshot_info(cls, snapshot_id: str, config: SandboxConfig | None = None) -> m.SandboxSnapshot:
        """One snapshot, by id. Raises :class:`SnapshotNotFoundError`."""
        return await _with_api(config, lambda api: api.snapshot_info(snapshot_id))

    @classmethod
    async def list_snapshots(
        cls, config: SandboxConfig | None = None, name: str | None = None
    ) -> list[m.SandboxSnapshot]:
        """The snapshots of the server (``config.base_url``) or of this machine's runtime dir, oldest first."""
        return (await _with_api(config, lambda api: api.list_snapshots(m.SnapshotQuery(name=name)))).snapshots

    @classmethod
    async def delete_snapshot(
        cls, snapshot: m.SandboxSnapshot | str, config: SandboxConfig | None = None
    ) -> m.SandboxSnapshot:
        """Remove a snapshot; sandboxes made from it go on. Raises :class:`SnapshotNotFoundError`."""
        snapshot_id = snapshot.id if isinstance(snapshot, m.SandboxSnapshot) else snapshot
        return await _with_api(config, lambda api: api.delete_snapshot(snapshot_id))

    # ---- env hosting --------------------------------------------------------------------------

    async def open_worker(self, argv: list[str] | None = None, env: dict[str, str] | None = None) -> WorkerChannel:
        """Start an env worker (``python -m rock_envs.worker --fd N``) in the sandbox; frames go to it untouched."""
        return await self._b("open_worker").open_worker(
            self.id, m.WorkerRequest(argv=list(argv or m.WORKER_ARGV), env=env)
        )


def restore_config(snapshot: m.SandboxSnapshot, where: SandboxConfig) -> SandboxConfig:
    """The config of a sandbox like the one ``snapshot`` was taken from, over its files, made where
    ``where`` says (``base_url``, ``token``, ``runtime_dir``)."""
    spec = snapshot.spec.model_dump(exclude={"snapshot"})
    return SandboxConfig(**{**where.model_dump(), **spec, "snapshot": snapshot.id})


async def _read_chunks(fh: io.BufferedIOBase | Any) -> AsyncIterator[bytes]:
    while chunk := fh.read(CHUNK):
        yield chunk


def _api_for(config: SandboxConfig) -> SandboxAPI:
    """The API ``config`` says: embedded without ``base_url`` (one manager for the running loop's
    sandboxes on ``runtime_dir``), else the server's."""
    if config.base_url is None:
        if config.data_urls:
            raise InvalidRequestError(
                "`Sandbox`: `data_urls` are a split server's replicas, which need its control plane too; "
                "pass `base_url=` the control plane's URL (`rock-envs serve --role control`)."
            )
        from ..local import LocalSandboxAPI

        return LocalSandboxAPI.shared(config.runtime_dir)
    return _http_api(config)


async def _with_api(config: SandboxConfig | None, call: Any) -> Any:
    """``call(api)`` on the API for ``config`` (default: embedded), closed afterwards."""
    api = _api_for(config or SandboxConfig())
    try:
        return await call(api)
    finally:
        await api.aclose()


def _http_api(config: SandboxConfig) -> SandboxAPI:
    from .http import HttpSandboxAPI

    assert config.base_url is not None  # the callers checked
    if config.data_urls:
        from .cluster import ClusterSandboxAPI

        return ClusterSandboxAPI.connect(
            config.base_url, config.data_urls, config.resolve_token(), timeout=config.request_timeout
        )
    return HttpSandboxAPI.connect(config.base_url, config.resolve_token(), timeout=config.request_timeout)
