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

from ..core.cores import usable_cores
from .agent_client import AgentClient
from .cluster.store import MemoryStore, SandboxRecord, SandboxStore, StoreUnreachableError
from .errors import InvalidRequestError, SandboxDiedError, SandboxError, SandboxLimitError, SandboxNotFoundError
from .metrics import SandboxMetrics
from .model_service.hub import ModelHub
from .models import (
    ClaimRequest,
    ManagerStats,
    PoolRequest,
    PoolStats,
    SandboxInfo,
    SandboxSnapshot,
    SandboxSpec,
    SnapshotRequest,
)
from .pools import Pool, claim_key
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
    pool: str | None = None  # the warm pool it belongs to, if any
    home: str = ""  # the id its directory and state record were made under (claims give new ids)
    lease_until: float | None = None

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
            pool=self.pool,
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
        max_sandboxes: int = 4096,
        reap_interval: float = 1.0,
        allowed_runtimes: tuple[str, ...] | None = None,
        max_starting: int | None = None,
        store: SandboxStore | None = None,
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
        # Sandboxes being started at once; more wait in line (FIFO). Past a few per core, more at
        # once only adds contention (fork, mounts, cgroups) and every start gets slower.
        self.max_starting = max_starting or 4 * usable_cores()
        self._start_slots = asyncio.Semaphore(self.max_starting)
        self._queued = 0
        self.pools: dict[str, Pool] = {}
        self.pool_start_timeout = 60.0
        self.counts = {"swept": 0, "lease_expired": 0, "ttl_reaped": 0}
        self.dead_retention = 60.0
        """Seconds a dead sandbox (its agent, container or node gone) is kept, so calls on it say so
        rather than 'not found'; then it is removed."""
        self._reaper: asyncio.Task[None] | None = None
        self._started = False
        self.models = ModelHub(store_dir=os.path.join(self.state.path, "trajectories"))
        """The sandboxes' OpenAI-compatible endpoints (``spec.model_service``), their calls and trajectories."""
        self.snapshots = SnapshotStore(os.path.join(self.state.path, "snapshots"))
        self.metrics = SandboxMetrics(self)
        """Its Prometheus registry (``metrics.registry``): what ``GET /metrics`` serves."""
        self.models.on_call = self.metrics.model_call_done
        self.store = store or MemoryStore()
        """Where each running sandbox is, for data replicas (see ``cluster/store.py``); in memory by default."""

    @property
    def owner(self) -> str:
        return self.state.owner

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        for stale in await self.store.all():  # an earlier manager's, whose sandboxes died with it
            await self.store.remove(stale.info.id)
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
        self.counts["swept"] += count
        return count

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for pool in list(self.pools.values()):
            await pool.close()
        self.pools = {}
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
        """A running sandbox of ``spec``: from a warm pool whose spec it matches (labels, ttl and
        lease aside), else started now."""
        began = time.monotonic()
        for pool in self.pools.values():
            if pool.key == claim_key(spec):
                misses = pool.misses
                info = await pool.claim(
                    ClaimRequest(pool=pool.name, labels=spec.labels, ttl=spec.ttl, lease=spec.lease)
                )
                self.metrics.create.labels("hit" if pool.misses == misses else "miss").observe(time.monotonic() - began)
                return info
        entry = await self.launch(spec, timeout)
        self._renew(entry)
        self.metrics.create.labels("miss").observe(time.monotonic() - began)
        return entry.info()

    async def launch(self, spec: SandboxSpec, timeout: float, pool: str | None = None) -> Entry:
        """Start a sandbox (status ``running``, or ``pooled`` for a pool's member), in line behind
        ``max_starting`` others."""
        if not self._started:
            await self.start()
        if len(self.sandboxes) >= self.max_sandboxes:
            raise SandboxLimitError(
                f"`create`: this manager already holds {len(self.sandboxes)} sandboxes, "
                f"its limit; stop some first or raise `max_sandboxes`.",
                cap="manager_max_sandboxes",
            )
        source = self._source(spec)
        spec = self._like(source, spec)
        runtime = self._runtime(spec.runtime, spec.placement)
        entry = Entry("sb-" + secrets.token_hex(6), spec, runtime, pool=pool)
        entry.home = entry.id
        self.sandboxes[entry.id] = entry
        self._queued += 1
        began = time.monotonic()
        try:
            await asyncio.wait_for(self._start_slots.acquire(), timeout)
        except asyncio.TimeoutError:
            self.sandboxes.pop(entry.id, None)
            raise SandboxLimitError(
                f"`create`: waited {timeout} s in line behind {self.max_starting} sandboxes being started at once "
                "(`max_starting`); create fewer at once, raise the timeout, or raise `--max-starting`.",
                cap="max_starting",
            ) from None
        finally:
            self._queued -= 1
        dirs = SandboxDirs(self.state.sandbox_dir(entry.id))
        began = self.metrics.phase("queue", began)
        try:
            os.makedirs(dirs.root, mode=0o755)
            self.state.save(entry.id, {"runtime": runtime.name, "sandbox_id": entry.id, "owner": self.owner})
            if source is not None:
                spec = entry.spec = await runtime.prepare(source, self.snapshots.root(source.id), dirs, spec)
            entry.placement = await runtime.start(entry.id, spec, dirs, timeout)
            began = self.metrics.phase("start", began)
            self.state.save(entry.id, runtime.record(entry.placement))
            placed = entry.placement
            entry.agent = AgentClient(placed.socket, entry.id, secret=placed.secret, where=placed.where)
            hello = await entry.agent.hello()
            self.metrics.phase("agent_ready", began)
            entry.placement.isolation = list(hello.get("isolation") or []) + entry.placement.isolation
            if spec.model_service is not None and pool is None:
                await self.models.attach(entry.id, spec.model_service, entry.agent)
            entry.status = "pooled" if pool else "running"
            entry.last_used_at = time.time()
            if pool is None:
                await self._publish(entry)
        except BaseException:
            self._start_slots.release()
            await self.delete(entry.id)
            raise
        self._start_slots.release()
        return entry

    # ---- warm pools (pools.py decides which member; the entries are the manager's) ---------------

    async def create_pool(self, req: PoolRequest) -> PoolStats:
        if req.name in self.pools:
            raise InvalidRequestError(f"`create_pool`: a pool named {req.name!r} exists; delete it first.")
        if len(self.sandboxes) + req.size > self.max_sandboxes:
            raise SandboxLimitError(
                f"`create_pool`: {req.size} members would take this manager past its {self.max_sandboxes} "
                f"sandboxes (it holds {len(self.sandboxes)}); ask for a smaller pool or raise `max_sandboxes`."
            )
        if not self._started:
            await self.start()
        pool = self.pools[req.name] = Pool(self, req)
        try:
            await pool.fill(self.pool_start_timeout)
        except BaseException:
            self.pools.pop(req.name, None)
            await pool.close()
            raise
        return pool.stats()

    def pool(self, name: str, call: str) -> Pool:
        if name not in self.pools:
            known = ", ".join(sorted(self.pools)) or "none"
            raise SandboxNotFoundError(f"`{call}`: no pool {name!r} on this manager (pools: {known}).")
        return self.pools[name]

    async def delete_pool(self, name: str) -> PoolStats:
        pool = self.pool(name, "delete_pool")
        del self.pools[name]
        await pool.close()
        return pool.stats()

    async def claim(self, req: ClaimRequest) -> SandboxInfo:
        return await self.pool(req.pool, "claim").claim(req)

    async def rekey(self, entry: Entry, pooled: bool = False) -> None:
        """Give ``entry`` a new id (a claim, or a member back in its pool): the old id no longer reaches it."""
        self.sandboxes.pop(entry.id, None)
        await self.store.remove(entry.id)
        entry.id = "sb-" + secrets.token_hex(6)
        if entry.agent is not None:
            entry.agent.sandbox_id = entry.id
        self.sandboxes[entry.id] = entry
        if pooled and entry.pool in self.pools:
            entry.status, entry.spec, entry.lease_until = "pooled", self.pools[entry.pool].req.spec, None

    async def hand_out(self, entry: Entry, per_claim: dict[str, Any]) -> SandboxInfo:
        entry.spec = entry.spec.model_copy(update={k: v for k, v in per_claim.items() if v is not None})
        if entry.spec.model_service is not None and entry.agent is not None:
            await self.models.attach(entry.id, entry.spec.model_service, entry.agent)
        entry.status, entry.last_used_at = "running", time.time()
        self._renew(entry)
        await self._publish(entry)
        return entry.info()

    async def reset_member(self, entry: Entry) -> bool:
        """Ask the agent to remove everything of the last user; True if it found nothing left after."""
        await self.models.detach(entry.id)
        try:
            async with self.use(entry.id, "recycle") as agent:
                reply, _ = await agent.call({"op": "sandbox.reset"}, timeout=AGENT_GRACE)
        except SandboxError:
            return False
        return bool(reply.get("clean"))

    async def recycle(self, sandbox_id: str) -> SandboxInfo:
        entry = self.get(sandbox_id, "recycle")
        if entry.pool not in self.pools:
            raise InvalidRequestError(f"`recycle`: sandbox {sandbox_id!r} did not come from a pool; stop it instead.")
        info = entry.info()
        kept = await self.pools[str(entry.pool)].recycle(entry)
        return info.model_copy(update={"status": "pooled" if kept else "stopped"})

    def renew(self, sandbox_id: str, release: bool = False) -> SandboxInfo:
        entry = self.get(sandbox_id, "renew")
        if release:
            entry.spec = entry.spec.model_copy(update={"lease": None})
        self._renew(entry)
        return entry.info()

    def renew_all(self, sandbox_ids: list[str]) -> tuple[list[str], list[str]]:
        """Renew each known id's lease; returns (renewed, missing)."""
        renewed, missing = [], []
        for sid in sandbox_ids:
            entry = self.sandboxes.get(sid)
            if entry is None or entry.status == "pooled":  # a pooled member is nobody's to hold
                missing.append(sid)
            else:
                self._renew(entry)
                renewed.append(sid)
        return renewed, missing

    def _renew(self, entry: Entry) -> None:
        entry.lease_until = time.time() + entry.spec.lease if entry.spec.lease else None

    def stats(self) -> ManagerStats:
        status = [e.status for e in self.sandboxes.values()]
        return ManagerStats(
            starting=status.count("starting"),
            running=status.count("running"),
            dead=status.count("dead"),
            pooled=status.count("pooled"),
            waiting_to_start=self._queued,
            max_starting=self.max_starting,
            max_sandboxes=self.max_sandboxes,
            **self.counts,
        )

    async def delete(self, sandbox_id: str) -> SandboxInfo:
        entry = self.sandboxes.pop(sandbox_id, None)
        if entry is None:
            raise self._unknown(sandbox_id, "delete")
        entry.status = "stopped"
        unlisted: StoreUnreachableError | None = None
        try:  # before the kill: once `delete` returns, no data replica finds it
            await self.store.remove(sandbox_id)
        except StoreUnreachableError as exc:
            unlisted = exc  # the sandbox is removed all the same; the caller hears the store failed
        if entry.pool in self.pools:
            self.pools[str(entry.pool)].forget(entry)
        await self.models.detach(sandbox_id)
        if entry.agent is not None:
            await entry.agent.close()
        if entry.placement is not None:
            await entry.runtime.kill(entry.placement)
        await asyncio.to_thread(self.state.forget, entry.home or sandbox_id)
        if unlisted is not None:
            raise unlisted
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

    @staticmethod
    def _like(source: SandboxSnapshot | None, spec: SandboxSpec) -> SandboxSpec:
        """A snapshot of a writable root brings its changes to ``/``: the new sandbox has one too."""
        if source is not None and source.spec.writable_root and not spec.writable_root:
            return spec.model_copy(update={"writable_root": True})
        return spec

    async def snapshot(self, sandbox_id: str, req: SnapshotRequest) -> SandboxSnapshot:
        """Capture a running sandbox's files (and with ``memory``, its processes) as a new snapshot."""
        entry = self.hold(sandbox_id, "snapshot")
        snapshot_id = self.snapshots.new_id()
        dest = self.snapshots.dir(snapshot_id)
        try:
            assert entry.placement is not None  # hold() checked it is running
            dirs = SandboxDirs(self.state.sandbox_dir(entry.home or entry.id))  # a claimed member keeps its dir
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
                if entry.status in ("starting", "pooled"):  # a pool looks after its own members
                    continue
                if entry.status == "running" and entry.agent is not None and not entry.agent.alive:
                    await self._died(entry)
                idle = entry.spec.ttl and entry.busy == 0 and now - entry.last_used_at > entry.spec.ttl
                if idle:  # busy through a data replica counts too
                    idle = not await self._used_elsewhere(entry, now)
                lapsed = entry.lease_until is not None and now > entry.lease_until
                if (
                    idle
                    or lapsed
                    or entry.status == "dead"
                    and entry.busy == 0
                    and now - entry.last_used_at > self.dead_retention
                ):
                    try:
                        await self.delete(entry.id)
                    except SandboxError:
                        continue
                    if lapsed or idle:
                        self.counts["lease_expired" if lapsed else "ttl_reaped"] += 1
            for pool in list(self.pools.values()):
                for member in list(pool.ready):
                    if member.agent is None or not member.agent.alive:
                        await self.delete(member.id)  # the pool counts it and starts another

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
            await self._died(entry)
            raise
        finally:
            self.release(entry)

    def hold(self, sandbox_id: str, call: str) -> Entry:
        """Mark a running sandbox in use (never reaped) until :meth:`release`; for long-lived channels."""
        entry = self.get(sandbox_id, call)
        if entry.status != "running" or entry.agent is None:
            where = entry.placement.where if entry.placement else ""
            raise SandboxDiedError(f"`{call}`: sandbox {sandbox_id!r}{where} is {entry.status}; create a new one.")
        entry.busy += 1
        entry.last_used_at = time.time()
        return entry

    async def _died(self, entry: Entry) -> None:
        if entry.status != "dead":
            entry.status = "dead"
            self.metrics.agent_deaths.inc()
            await self._publish(entry)

    # ---- what data replicas read (cluster/store.py) -----------------------------------------------

    async def _publish(self, entry: Entry) -> None:
        assert entry.placement is not None  # only started sandboxes are published
        placed = entry.placement
        record = SandboxRecord(
            info=entry.info(), socket=placed.socket, secret=placed.secret, where=placed.where, owner=self.owner
        )
        await self.store.put(record)

    async def _used_elsewhere(self, entry: Entry, now: float) -> bool:
        """True if a data replica used ``entry`` within its TTL (its idle clock then moves up to that use)."""
        try:
            used = (await self.store.last_used([entry.id])).get(entry.id)
        except StoreUnreachableError:
            return True  # not known: a sandbox is never reaped for idleness on a guess
        if used is not None and used > entry.last_used_at:
            entry.last_used_at = used
        return now - entry.last_used_at <= entry.spec.ttl

    def release(self, entry: Entry) -> None:
        entry.busy -= 1
        entry.last_used_at = time.time()
