"""The sandbox manager: lifecycle, TTLs, ownership and crash cleanup. Embedded in the SDK or in the server.

Before ``start()``: nothing runs. ``start()`` reaps what a crashed earlier manager on the same runtime
dir left behind, then starts the TTL reaper. ``create(spec)`` returns once the sandbox's agent
answers. Every operation on a sandbox refreshes its idle clock; a sandbox busy in a call is never
reaped. ``close()`` removes every sandbox this manager made; safe to call twice. Snapshots
(``snapshot``, ``create`` from one, ``delete_snapshot``) live on disk in the runtime dir, shared by
every manager on it and outliving them (``snapshots.py``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from .agent_client import AgentClient
from .errors import InvalidRequestError, SandboxDiedError, SandboxError, SandboxLimitError, SandboxNotFoundError
from .model_service.hub import ModelHub
from .models import SandboxInfo, SandboxSnapshot, SandboxSpec, SnapshotRequest
from .runtime import Placement, Runtime, SandboxDirs, make_runtime
from .snapshots import SnapshotStore
from .state import StateDir, default_runtime_dir

MAX_SOCKET_PATH = 100
AGENT_GRACE = 60.0  # seconds an agent may take beyond a call's own timeout before it counts as wedged


@dataclass
class Entry:
    id: str
    spec: SandboxSpec
    runtime: Runtime
    created_at: float = field(default_factory=time.time)
    last_used_at: float = field(default_factory=time.time)
    status: str = "starting"
    placement: Placement | None = None
    agent: AgentClient | None = None
    busy: int = 0

    def info(self) -> SandboxInfo:
        root = self.placement.root if self.placement else ""
        isolation = self.placement.isolation if self.placement else []
        container = self.placement.extra.get("container") if self.placement else None
        return SandboxInfo(
            id=self.id,
            status=self.status,
            spec=self.spec,
            created_at=self.created_at,
            last_used_at=self.last_used_at,
            root=root,
            isolation=isolation,
            container=str(container) if container else None,
        )


class SandboxManager:
    """The sandboxes of one process (an embedded SDK or a server), by id; the lifecycle is the module's docstring.

    `create` returns a running sandbox (its agent answered); `delete` returns its last info and
    leaves no process, container, mount or cgroup behind; `use(id, call)` is the one way to reach a
    sandbox's agent, and marks the sandbox dead if the agent is gone. `close()` deletes every sandbox.
    """

    def __init__(
        self,
        runtime_dir: str | None = None,
        runtime_options: dict[str, dict[str, Any]] | None = None,
        max_sandboxes: int = 1024,
        reap_interval: float = 1.0,
        allowed_runtimes: tuple[str, ...] | None = None,
    ):
        self.state = StateDir(runtime_dir or default_runtime_dir())
        probe = os.path.join(self.state.sandbox_dir("sb-" + "0" * 12), "agent.sock")
        if len(probe) > MAX_SOCKET_PATH:
            raise InvalidRequestError(
                f"`SandboxManager`: runtime_dir {self.state.path!r} is too long for unix socket paths "
                f"({len(probe)} > {MAX_SOCKET_PATH} characters); pick a shorter directory."
            )
        self.runtime_options = runtime_options or {}
        self.allowed = allowed_runtimes
        self.runtimes: dict[str, Runtime] = {}
        self.sandboxes: dict[str, Entry] = {}
        self.max_sandboxes = max_sandboxes
        self.reap_interval = reap_interval
        self._reaper: asyncio.Task[None] | None = None
        self._started = False
        self.models = ModelHub()
        """The sandboxes' OpenAI-compatible endpoints (``spec.model_service``), their calls and trajectories."""
        self.snapshots = SnapshotStore(os.path.join(self.state.path, "snapshots"))

    @property
    def owner(self) -> str:
        return self.state.owner

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self.reap_leftovers()
        self._reaper = asyncio.create_task(self._reap_loop())

    async def reap_leftovers(self) -> int:
        count = 0
        for sandbox_id, record in list(self.state.orphans()):
            name = record.get("runtime")
            if name:
                try:
                    placed = name == "ray"  # a Ray-placed sandbox: its record names the inner runtime
                    await self._runtime(
                        str(record.get("inner_runtime", "process")) if placed else str(name),
                        "ray" if placed else "local",
                    ).reap(record)
                except SandboxError:
                    continue  # that runtime is not available here; leave its record for one that is
            self.state.forget(sandbox_id)
            count += 1
        return count

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        await asyncio.gather(*(self.delete(sid) for sid in list(self.sandboxes)), return_exceptions=True)
        await self.models.close()
        for runtime in self.runtimes.values():
            await runtime.close()
        self.runtimes = {}
        self._started = False

    def _runtime(self, name: str, placement: str = "local") -> Runtime:
        if self.allowed is not None and name not in self.allowed:
            raise InvalidRequestError(
                f"`create`: runtime {name!r} is not enabled on this server; enabled: {', '.join(self.allowed)}."
            )
        key = name if placement == "local" else f"{placement}/{name}"
        if key not in self.runtimes:
            options = self.runtime_options.get(name, {})
            self.runtimes[key] = (
                make_runtime(name, **options)
                if placement == "local"
                else make_runtime(placement, inner=name, inner_options=options)
            )
        return self.runtimes[key]

    async def create(self, spec: SandboxSpec, timeout: float = 60.0) -> SandboxInfo:
        if not self._started:
            await self.start()
        if len(self.sandboxes) >= self.max_sandboxes:
            raise SandboxLimitError(
                f"`create`: this manager already holds {len(self.sandboxes)} sandboxes, "
                f"its limit; stop some first or raise `max_sandboxes`."
            )
        source = self._source(spec)
        runtime = self._runtime(spec.runtime, spec.placement)
        entry = Entry("sb-" + secrets.token_hex(6), spec, runtime)
        self.sandboxes[entry.id] = entry
        dirs = SandboxDirs(self.state.sandbox_dir(entry.id))
        try:
            os.makedirs(dirs.root, mode=0o755)
            self.state.save(entry.id, {"runtime": runtime.name, "sandbox_id": entry.id, "owner": self.owner})
            if source is not None:
                spec = entry.spec = await runtime.prepare(source, self.snapshots.root(source.id), dirs, spec)
            entry.placement = await runtime.start(entry.id, spec, dirs, timeout)
            self.state.save(entry.id, runtime.record(entry.placement))
            entry.agent = AgentClient(entry.placement.socket, entry.id)
            hello = await entry.agent.hello()
            entry.placement.isolation = list(hello.get("isolation") or []) + entry.placement.isolation
            if spec.model_service is not None:
                await self.models.attach(entry.id, spec.model_service, entry.placement.socket)
            entry.status = "running"
            entry.last_used_at = time.time()
        except BaseException:
            await self.delete(entry.id)
            raise
        return entry.info()

    async def delete(self, sandbox_id: str) -> SandboxInfo:
        entry = self.sandboxes.pop(sandbox_id, None)
        if entry is None:
            raise self._unknown(sandbox_id, "delete")
        entry.status = "stopped"
        await self.models.detach(sandbox_id)
        if entry.agent is not None:
            await entry.agent.close()
        if entry.placement is not None:
            await entry.runtime.kill(entry.placement)
        await asyncio.to_thread(self.state.forget, sandbox_id)
        return entry.info()

    # ---- snapshots ----------------------------------------------------------------------------

    def _source(self, spec: SandboxSpec) -> SandboxSnapshot | None:
        if spec.snapshot is None:
            return None
        snapshot = self.snapshots.get(spec.snapshot, "create")
        if snapshot.runtime != spec.runtime:
            raise InvalidRequestError(
                f"`create`: snapshot {snapshot.id} is of a {snapshot.runtime} sandbox, but the spec asks for the "
                f"{spec.runtime} runtime; create it with runtime={snapshot.runtime!r}."
            )
        if snapshot.memory:
            raise InvalidRequestError(
                f"`create`: snapshot {snapshot.id} holds a process checkpoint, which this runtime cannot restore."
            )
        return snapshot

    async def snapshot(self, sandbox_id: str, req: SnapshotRequest) -> SandboxSnapshot:
        """Capture a running sandbox's files (and with ``memory``, its processes) as a new snapshot."""
        entry = self.hold(sandbox_id, "snapshot")
        snapshot_id = self.snapshots.new_id()
        dest = self.snapshots.dir(snapshot_id)
        try:
            assert entry.placement is not None  # hold() checked it is running
            dirs = SandboxDirs(self.state.sandbox_dir(entry.id))
            os.makedirs(dest)
            if req.memory:
                await entry.runtime.checkpoint(entry.placement, dirs, dest)
            facts = await entry.runtime.snapshot(entry.placement, dirs, snapshot_id, dest)
            snapshot = SandboxSnapshot(
                id=snapshot_id,
                name=req.name,
                sandbox_id=entry.id,
                runtime=entry.spec.runtime,
                spec=entry.spec,
                created_at=time.time(),
                size=int(facts.get("size", 0)),
                image=facts.get("image"),
                memory=req.memory,
            )
            await asyncio.to_thread(self.snapshots.save, snapshot)
        except BaseException:
            await asyncio.to_thread(self.snapshots.forget, snapshot_id)
            raise
        finally:
            self.release(entry)
        return snapshot

    def get_snapshot(self, snapshot_id: str) -> SandboxSnapshot:
        return self.snapshots.get(snapshot_id, "snapshot_info")

    def list_snapshots(self, name: str | None = None, sandbox_id: str | None = None) -> list[SandboxSnapshot]:
        return [
            s
            for s in self.snapshots.list()
            if (name is None or s.name == name) and (sandbox_id is None or s.sandbox_id == sandbox_id)
        ]

    async def delete_snapshot(self, snapshot_id: str) -> SandboxSnapshot:
        """Remove a snapshot; sandboxes made from it go on (their files are their own copies)."""
        snapshot = self.snapshots.get(snapshot_id, "delete_snapshot")
        await self._runtime(snapshot.runtime).delete_snapshot(snapshot)
        await asyncio.to_thread(self.snapshots.forget, snapshot.id)
        return snapshot

    def _unknown(self, sandbox_id: str, call: str) -> SandboxNotFoundError:
        return SandboxNotFoundError(
            f"`{call}`: no sandbox {sandbox_id!r} on this manager; it was stopped, "
            "reaped after its TTL, or never existed. List them with `ls`."
        )

    def get(self, sandbox_id: str, call: str = "get") -> Entry:
        entry = self.sandboxes.get(sandbox_id)
        if entry is None:
            raise self._unknown(sandbox_id, call)
        return entry

    def info(self, sandbox_id: str) -> SandboxInfo:
        return self.get(sandbox_id).info()

    def list(
        self, status: str | None = None, runtime: str | None = None, labels: dict[str, str] | None = None
    ) -> list[SandboxInfo]:
        out = []
        for entry in self.sandboxes.values():
            if status and entry.status != status or runtime and entry.spec.runtime != runtime:
                continue
            if labels and any(entry.spec.labels.get(k) != v for k, v in labels.items()):
                continue
            out.append(entry.info())
        return out

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval)
            now = time.time()
            for entry in list(self.sandboxes.values()):
                if entry.status == "starting":  # its idle clock starts once it is up
                    continue
                idle = entry.spec.ttl and entry.busy == 0 and now - entry.last_used_at > entry.spec.ttl
                if idle or entry.status == "dead" and entry.busy == 0 and now - entry.last_used_at > 60:
                    try:
                        await self.delete(entry.id)
                    except SandboxError:
                        pass

    # ---- every use of a sandbox's agent passes here ---------------------------------------------

    @asynccontextmanager
    async def use(self, sandbox_id: str, call: str) -> AsyncIterator[AgentClient]:
        """The agent of a running sandbox, for the length of the ``async with``.

        Before: the sandbox exists (else :class:`SandboxNotFoundError`) and is running (else
        :class:`SandboxDiedError`). During: it counts as busy, so the reaper never removes it. After:
        its idle clock restarts; if the agent turned out to be gone, the sandbox is marked ``dead``.
        """
        entry = self.hold(sandbox_id, call)
        assert entry.agent is not None  # hold() checked it
        try:
            yield entry.agent
        except SandboxDiedError:
            entry.status = "dead"
            raise
        finally:
            self.release(entry)

    def hold(self, sandbox_id: str, call: str) -> Entry:
        """Mark a running sandbox in use (never reaped) until :meth:`release`; for long-lived channels."""
        entry = self.get(sandbox_id, call)
        if entry.status != "running" or entry.agent is None:
            raise SandboxDiedError(f"`{call}`: sandbox {sandbox_id!r} is {entry.status}; create a new one.")
        entry.busy += 1
        entry.last_used_at = time.time()
        return entry

    def release(self, entry: Entry) -> None:
        entry.busy -= 1
        entry.last_used_at = time.time()
