"""Warm pools: sandboxes started ahead of demand, handed out in the time of a dict lookup.

A pool keeps ``size`` members ready (started, never used) and refills in the background after
every claim; members ready plus claimed never exceed ``max_size``. A claim takes a ready member
and gives it a new id (so nothing that knew the member by an earlier id can reach it), else starts
one (a *miss*), else waits for a member to come back, up to its timeout. A ready member whose agent
died is removed and replaced. ``recycle`` resets a claimed member (its processes, sessions, jobs and
files) and returns it to the pool only if the agent confirms that nothing of the last user is left;
otherwise it is removed. The manager owns the entries; a pool owns only the choice of which.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque
from typing import TYPE_CHECKING

from .errors import InvalidRequestError, SandboxError, SandboxLimitError
from .models import ClaimRequest, PoolRequest, PoolStats, SandboxInfo, SandboxSpec

if TYPE_CHECKING:
    from .manager import Entry, SandboxManager

PER_CLAIM = ("labels", "ttl", "lease")  # what a claim may set; the rest of the spec is the pool's


def claim_key(spec: SandboxSpec) -> SandboxSpec:
    """What a spec must share with a pool's to be served from it."""
    return spec.model_copy(update={"labels": {}, "ttl": 0.0, "lease": None})


class Pool:
    def __init__(self, manager: SandboxManager, req: PoolRequest):
        if req.max_size is not None and req.max_size < req.size:
            raise InvalidRequestError(
                f"`create_pool`: pool {req.name!r} has size {req.size} over its max_size {req.max_size}; "
                "size is how many wait ready, max_size how many may exist at once."
            )
        if req.spec.snapshot is not None:
            raise InvalidRequestError(
                f"`create_pool`: pool {req.name!r} asks for sandboxes made from snapshot {req.spec.snapshot}, but a "
                "recycled member is wiped (its snapshot's files with it); make them with `Sandbox.from_snapshot`."
            )
        self.manager, self.req, self.name = manager, req, req.name
        self.key = claim_key(req.spec)
        self.ready: deque[Entry] = deque()
        self.claimed: set[str] = set()
        self.starting = 0
        self.claims = self.misses = self.recycled = self.replaced = 0
        self.refill_times: deque[float] = deque(maxlen=256)
        self.changed = asyncio.Event()  # set whenever a member comes or goes
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    @property
    def total(self) -> int:
        return len(self.ready) + len(self.claimed) + self.starting

    # ---- filling ------------------------------------------------------------------------------

    async def fill(self, timeout: float) -> None:
        """Start ``size`` members now; the first failure (a missing image, say) fails the pool."""
        self.starting += self.req.size
        results = await asyncio.gather(*(self._add(timeout) for _ in range(self.req.size)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise type(errors[0])(f"pool {self.name!r} could not start its members: {errors[0]}") from errors[0]

    def refill(self) -> None:
        """Start members in the background until ``size`` are ready or starting (within ``max_size``)."""
        room = float("inf") if self.req.max_size is None else self.req.max_size - self.total
        for _ in range(int(min(self.req.size - len(self.ready) - self.starting, room))):
            self.starting += 1  # now, not when the task runs: the next refill must count it
            task = asyncio.create_task(self._refill_one())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _refill_one(self) -> None:
        try:
            await self._add(self.manager.pool_start_timeout)
        except (SandboxError, OSError):
            await asyncio.sleep(1.0)  # a failing runtime: try again later, not in a tight loop
            if not self.closed:
                self.refill()

    async def _add(self, timeout: float) -> None:
        """Start one member; the caller counted it in ``starting`` already."""
        t0 = time.perf_counter()
        try:
            entry = await self.manager.launch(self.req.spec, timeout, pool=self.name)
        finally:
            self.starting -= 1
        self.refill_times.append(time.perf_counter() - t0)
        if self.closed:
            await self.manager.delete(entry.id)
            return
        self.ready.append(entry)
        self.changed.set()

    # ---- claiming -----------------------------------------------------------------------------

    async def claim(self, req: ClaimRequest) -> SandboxInfo:
        deadline = time.monotonic() + req.timeout
        while True:
            entry = await self._take_ready()
            if entry is not None:
                self.claims += 1
                break
            if self.req.max_size is None or self.total < self.req.max_size:
                self.misses += 1
                self.starting += 1
                try:
                    entry = await self.manager.launch(self.req.spec, req.timeout, pool=self.name)
                finally:
                    self.starting -= 1
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise SandboxLimitError(
                    f"`claim`: pool {self.name!r} has all {self.req.max_size} members (its max_size) claimed; "
                    f"none came back within {req.timeout} s. Stop or recycle some, or raise max_size.",
                    cap="pool_max_size",
                )
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass
        await self.manager.rekey(entry)  # a new id: nothing that knew the member before can reach it
        self.claimed.add(entry.id)
        self.refill()
        return await self.manager.hand_out(entry, {k: getattr(req, k) for k in PER_CLAIM})

    async def _take_ready(self) -> Entry | None:
        while self.ready:
            entry = self.ready.popleft()
            if entry.agent is not None and entry.agent.alive:
                return entry
            self.replaced += 1
            await self.manager.delete(entry.id)
        return None

    def forget(self, entry: Entry) -> None:
        """``entry`` is gone (stopped, reaped or dead): make room for a new member."""
        member = entry.id in self.claimed or entry in self.ready  # not a member that failed to start
        self.claimed.discard(entry.id)
        if entry in self.ready:
            self.ready.remove(entry)
            self.replaced += 1
        self.changed.set()
        if member and not self.closed:
            self.refill()

    async def recycle(self, entry: Entry) -> bool:
        """Reset a claimed member and put it back; False (and removed) if anything of its user survived."""
        if not await self.manager.reset_member(entry):
            await self.manager.delete(entry.id)
            return False
        self.claimed.discard(entry.id)
        if self.closed or len(self.ready) >= (self.req.max_size or 2 * self.req.size):
            await self.manager.delete(entry.id)  # more ready than the pool may ever need
            return True
        await self.manager.rekey(entry, pooled=True)
        self.ready.append(entry)
        self.recycled += 1
        self.changed.set()
        return True

    # ---- the rest -----------------------------------------------------------------------------

    def stats(self) -> PoolStats:
        times = sorted(self.refill_times)
        return PoolStats(
            name=self.name,
            spec=self.req.spec,
            size=self.req.size,
            max_size=self.req.max_size,
            ready=len(self.ready),
            starting=self.starting,
            claimed=len(self.claimed),
            claims=self.claims,
            misses=self.misses,
            recycled=self.recycled,
            replaced=self.replaced,
            refill_p50_ms=statistics.median(times) * 1e3 if times else None,
            refill_max_ms=times[-1] * 1e3 if times else None,
        )

    async def close(self) -> None:
        """Remove the ready members; claimed ones stay with their users (and are no longer counted)."""
        self.closed = True
        for task in list(self.tasks):
            task.cancel()
        members, self.ready = list(self.ready), deque()
        await asyncio.gather(*(self.manager.delete(e.id) for e in members), return_exceptions=True)
        self.changed.set()
