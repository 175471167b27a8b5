"""``SyncSandbox``: the blocking twin of :class:`Sandbox`, same method names (``run`` for ``arun``).

It drives a private event loop on a daemon thread, so it also works where a loop already runs
(a notebook). Every call blocks until the async method returns and raises the same errors.
"""

from __future__ import annotations

from typing import Any, Coroutine, Iterator, Literal, TypeVar

from ...core.loop_thread import LoopThread
from ..config import SandboxConfig
from ..errors import InvalidRequestError
from ..models import CommandResult, FileEntry, JobInfo, JobLogs, SandboxInfo, SandboxSnapshot, TransferResult
from .sandbox import OutputChunk, Sandbox, restore_config
from .worker import WorkerChannel

T = TypeVar("T")


class SyncWorkerChannel:
    """Blocking worker channel; ``send_bytes``/``recv_bytes`` make it a connection for ``WorkerClient``."""

    def __init__(self, loop: LoopThread, channel: WorkerChannel):
        self._loop, self._channel = loop, channel

    def send(self, payload: bytes) -> None:
        self._loop.run(self._channel.send(payload))

    def recv(self, timeout: float | None = 60.0) -> bytes:
        return self._loop.run(self._channel.recv(timeout))

    def request(self, payload: bytes, timeout: float | None = 60.0) -> bytes:
        return self._loop.run(self._channel.request(payload, timeout))

    send_bytes = send

    def recv_bytes(self) -> bytes:
        return self.recv(None)

    def close(self) -> None:
        self._loop.run(self._channel.aclose())

    def __enter__(self) -> SyncWorkerChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncSandbox:
    def __init__(self, config: SandboxConfig | None = None, **overrides: Any):
        self._sandbox = Sandbox(config, **overrides)
        self._loop: LoopThread | None = None

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = LoopThread("rock-envs-sandbox")
        return self._loop.run(coro)

    @classmethod
    def attach(cls, sandbox_id: str, config: SandboxConfig) -> SyncSandbox:
        """A handle on an existing sandbox of a server; ``detach()`` leaves it running."""
        sync = cls(config)
        sync._sandbox = sync._run(Sandbox.attach(sandbox_id, config))
        return sync

    def detach(self) -> None:
        if self._loop is None:
            return
        try:
            self._run(self._sandbox.detach())
        finally:
            self._loop.close()
            self._loop = None

    @property
    def id(self) -> str:
        return self._sandbox.id

    @property
    def config(self) -> SandboxConfig:
        return self._sandbox.config

    def start(self) -> SyncSandbox:
        self._run(self._sandbox.start())
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        try:
            self._run(self._sandbox.stop())
        finally:
            self._loop.close()
            self._loop = None

    close = stop

    def __enter__(self) -> SyncSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status(self) -> SandboxInfo:
        return self._run(self._sandbox.status())

    def create_session(
        self, session: str = "default", env: dict[str, str] | None = None, cwd: str | None = None, **options: Any
    ) -> str:
        return self._run(self._sandbox.create_session(session, env, cwd, **options))

    def close_session(self, session: str) -> None:
        self._run(self._sandbox.close_session(session))

    def run(
        self,
        cmd: str,
        session: str | None = None,
        timeout: float = 60.0,
        max_output: int | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> CommandResult:
        return self._run(self._sandbox.arun(cmd, session, timeout, max_output, env, cwd))

    def stream(
        self, cmd: str, session: str | None = None, timeout: float = 60.0, max_output: int | None = None
    ) -> Iterator[OutputChunk | CommandResult]:
        agen: Any = self._sandbox.stream(cmd, session, timeout, max_output)  # an async generator
        try:
            while True:
                try:
                    yield self._run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._run(agen.aclose())

    def run_job(self, cmd: str, env: dict[str, str] | None = None, cwd: str | None = None) -> JobInfo:
        return self._run(self._sandbox.run_job(cmd, env, cwd))

    def poll_job(self, job_id: str) -> JobInfo:
        return self._run(self._sandbox.poll_job(job_id))

    def list_jobs(self) -> list[JobInfo]:
        return self._run(self._sandbox.list_jobs())

    def wait_job(self, job_id: str, timeout: float = 60.0) -> JobInfo:
        return self._run(self._sandbox.wait_job(job_id, timeout))

    def job_logs(
        self, job_id: str, stream: Literal["stdout", "stderr"] = "stdout", offset: int = 0, limit: int | None = None
    ) -> JobLogs:
        return self._run(self._sandbox.job_logs(job_id, stream, offset, limit))

    def kill_job(self, job_id: str) -> JobInfo:
        return self._run(self._sandbox.kill_job(job_id))

    def read_file(self, path: str, encoding: str | None = "utf-8") -> str | bytes:
        return self._run(self._sandbox.read_file(path, encoding))  # type: ignore[return-value]

    def write_file(self, path: str, content: str | bytes, mode: int | None = None) -> TransferResult:
        return self._run(self._sandbox.write_file(path, content, mode))

    def list_files(self, path: str = ".", recursive: bool = False) -> list[FileEntry]:
        return self._run(self._sandbox.list_files(path, recursive))

    def delete_file(self, path: str, recursive: bool = False) -> None:
        self._run(self._sandbox.delete_file(path, recursive))

    def upload(self, local_path: str, remote_path: str) -> TransferResult:
        return self._run(self._sandbox.upload(local_path, remote_path))

    def download(self, remote_path: str, local_path: str) -> TransferResult:
        return self._run(self._sandbox.download(remote_path, local_path))

    def download_dir(self, remote_path: str, local_dir: str) -> TransferResult:
        return self._run(self._sandbox.download_dir(remote_path, local_dir))

    def snapshot(self, name: str | None = None, memory: bool = False) -> SandboxSnapshot:
        return self._run(self._sandbox.snapshot(name, memory))

    def fork(self, n: int) -> list[SyncSandbox]:
        """``n`` new, started sandboxes with a copy of this one's files as they are now."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidRequestError(f"`SyncSandbox.fork`: n must be a positive int, got {n!r}.")
        snapshot = self.snapshot(name=f"fork-of-{self.id}")
        clones: list[SyncSandbox] = []
        try:
            for _ in range(n):
                clones.append(SyncSandbox.from_snapshot(snapshot, self.config))
        except BaseException:
            for clone in clones:
                clone.stop()
            raise
        finally:
            SyncSandbox.delete_snapshot(snapshot, self.config)
        return clones

    @classmethod
    def from_snapshot(
        cls, snapshot: SandboxSnapshot | str, config: SandboxConfig | None = None, **overrides: Any
    ) -> SyncSandbox:
        if isinstance(snapshot, SandboxSnapshot):
            overrides = {"runtime": snapshot.runtime, **overrides}
            snapshot = snapshot.id
        return cls(config, snapshot=snapshot, **overrides).start()

    @classmethod
    def restore(cls, snapshot: SandboxSnapshot | str, config: SandboxConfig | None = None) -> SyncSandbox:
        base = config or SandboxConfig()
        if not isinstance(snapshot, SandboxSnapshot):
            snapshot = cls.snapshot_info(snapshot, base)
        return cls(restore_config(snapshot, base)).start()

    @classmethod
    def snapshot_info(cls, snapshot_id: str, config: SandboxConfig | None = None) -> SandboxSnapshot:
        return _once(Sandbox.snapshot_info(snapshot_id, config))

    @classmethod
    def list_snapshots(cls, config: SandboxConfig | None = None, name: str | None = None) -> list[SandboxSnapshot]:
        return _once(Sandbox.list_snapshots(config, name))

    @classmethod
    def delete_snapshot(cls, snapshot: SandboxSnapshot | str, config: SandboxConfig | None = None) -> SandboxSnapshot:
        return _once(Sandbox.delete_snapshot(snapshot, config))

    def open_worker(self, argv: list[str] | None = None, env: dict[str, str] | None = None) -> SyncWorkerChannel:
        channel = self._run(self._sandbox.open_worker(argv, env))
        assert self._loop is not None
        return SyncWorkerChannel(self._loop, channel)


def _once(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine on a loop thread of its own (for the classmethods, which have no sandbox)."""
    loop = LoopThread("rock-envs-sandbox")
    try:
        return loop.run(coro)
    finally:
        loop.close()


class LazySandbox:
    """A `SyncSandbox` of `config` started on first use, for envs and tools that may never need one;
    `close()` stops it (and a later use starts a new one)."""

    config: SandboxConfig

    _sandbox: SyncSandbox | None = None

    @property
    def sandbox(self) -> SyncSandbox:
        if self._sandbox is None:
            self._sandbox = SyncSandbox(self.config).start()
        return self._sandbox

    def close(self) -> None:
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            sandbox.stop()
