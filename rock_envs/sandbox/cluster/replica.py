"""``ReplicaSandboxAPI``: a data replica's implementation of the sandbox interface.

It reaches agents it does not own: their sockets come from the control plane's store, and it opens
ordinary connections to them (the lifeline stays with the control plane's manager, so a replica that
dies takes no sandbox with it). Lifecycle operations (create, delete, pools, claims, leases,
snapshots, counts) change the set of sandboxes and are the control plane's: here they raise an error
that names it. ``info`` and ``list`` answer from the store, as the control plane last wrote it.

Every ``REPORT_EVERY`` seconds the replica tells the store which sandboxes it used (and which it
holds: open worker channels, long commands), so the control plane's reaper never removes a sandbox
busy here, and it closes its connections to sandboxes that are gone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import AsyncIterator, NoReturn

from .. import models as m
from ..agent_api import AgentSandboxAPI
from ..agent_client import AgentClient
from ..errors import InvalidRequestError, SandboxDiedError, SandboxError, SandboxNotFoundError
from .store import SandboxRecord, SandboxStore

REPORT_EVERY = 1.0


class ReplicaSandboxAPI(AgentSandboxAPI):
    """Sandboxes of the control plane at ``control_url``, found in ``store``. ``aclose`` closes both."""

    def __init__(self, store: SandboxStore, control_url: str):
        self.store, self.control_url = store, control_url
        self.agents: dict[str, AgentClient] = {}
        self.busy: collections.Counter[str] = collections.Counter()
        self.used: dict[str, float] = {}
        self._reporter: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()  # agent pools being closed (held: tasks are weak)

    def start(self) -> None:
        if self._reporter is None:
            self._reporter = asyncio.create_task(self._report_loop())

    # ---- reaching an agent --------------------------------------------------------------------

    def _gone(self, sandbox_id: str, call: str) -> SandboxNotFoundError:
        return SandboxNotFoundError(
            f"`{call}`: no sandbox {sandbox_id!r} on the control plane {self.control_url}; it was stopped, "
            "reaped after its TTL, or never existed. List them with `ls`."
        )

    async def _record(self, sandbox_id: str, call: str, fresh: bool = False) -> SandboxRecord:
        record = await self.store.get(sandbox_id, fresh=fresh)
        if record is None:
            self._forget(sandbox_id)
            raise self._gone(sandbox_id, call)
        if record.info.status != "running":
            raise SandboxDiedError(f"`{call}`: sandbox {sandbox_id!r} is {record.info.status}; create a new one.")
        return record

    def _agent(self, record: SandboxRecord) -> AgentClient:
        sid = record.info.id
        agent = self.agents.get(sid)
        if agent is None or agent.path != record.socket:
            agent = self.agents[sid] = AgentClient(  # ordinary connections, no lifeline
                record.socket, sid, secret=record.secret, where=record.where
            )
        return agent

    def _forget(self, sandbox_id: str) -> None:
        agent = self.agents.pop(sandbox_id, None)
        if agent is not None:
            task = asyncio.get_running_loop().create_task(agent.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @contextlib.asynccontextmanager
    async def use(self, sandbox_id: str, call: str) -> AsyncIterator[AgentClient]:
        agent = self._agent(await self._record(sandbox_id, call))
        self.busy[sandbox_id] += 1
        try:
            yield agent
        except SandboxDiedError:
            # Its agent is gone: deleted on the control plane just now (our cache may not know yet),
            # or died. Ask the store itself which, so the caller hears the same as from the control plane.
            self._forget(sandbox_id)
            await self._record(sandbox_id, call, fresh=True)
            raise
        finally:
            self._release(sandbox_id)

    def hold(self, sandbox_id: str, call: str) -> str:
        """Checks nothing: callers hold, then :meth:`use` (which checks), and release if that raised."""
        self.busy[sandbox_id] += 1
        self.used[sandbox_id] = time.time()
        return sandbox_id

    def release(self, held: object) -> None:
        self._release(str(held))

    def _release(self, sandbox_id: str) -> None:
        self.busy[sandbox_id] -= 1
        if self.busy[sandbox_id] <= 0:
            del self.busy[sandbox_id]
        self.used[sandbox_id] = time.time()

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY)
            now = time.time()
            used, self.used = self.used, {}
            used.update({sid: now for sid in self.busy})
            try:
                await self.store.touch(used)
                for sid in [sid for sid in self.agents if sid not in self.busy]:
                    if await self.store.get(sid) is None:
                        self._forget(sid)
            except SandboxError:
                self.used = {**used, **self.used}  # the store is away: report them next time

    # ---- from the store -----------------------------------------------------------------------

    async def info(self, sandbox_id: str) -> m.SandboxInfo:
        record = await self.store.get(sandbox_id)
        if record is None:
            raise self._gone(sandbox_id, "status")
        return record.info

    async def list(self, req: m.ListRequest) -> m.SandboxList:
        infos = [r.info for r in await self.store.all()]
        return m.SandboxList(
            sandboxes=[
                i
                for i in infos
                if (req.status is None or i.status == req.status)
                and (req.runtime is None or i.spec.runtime == req.runtime)
                and all(i.spec.labels.get(k) == v for k, v in req.labels.items())
            ]
        )

    # ---- the control plane's ------------------------------------------------------------------

    def _control(self, call: str) -> NoReturn:
        raise InvalidRequestError(
            f"`{call}`: this server is a data replica (`rock-envs serve --role data`), which runs commands, "
            f"files, jobs and env frames only; send `{call}` to the control plane at {self.control_url}."
        )

    async def create(self, spec: m.SandboxSpec, timeout: float = 60.0) -> m.SandboxInfo:
        self._control("create")

    async def delete(self, sandbox_id: str) -> m.SandboxInfo:
        self._control("delete")

    async def create_pool(self, req: m.PoolRequest) -> m.PoolStats:
        self._control("create_pool")

    async def list_pools(self) -> m.PoolList:
        self._control("list_pools")

    async def delete_pool(self, name: str) -> m.PoolStats:
        self._control("delete_pool")

    async def claim(self, req: m.ClaimRequest) -> m.SandboxInfo:
        self._control("claim")

    async def recycle(self, sandbox_id: str) -> m.SandboxInfo:
        self._control("recycle")

    async def renew(self, sandbox_id: str, req: m.LeaseRequest) -> m.SandboxInfo:
        self._control("renew")

    async def renew_all(self, req: m.LeasesRequest) -> m.LeasesRenewed:
        self._control("renew_all")

    async def stats(self) -> m.ManagerStats:
        self._control("stats")

    async def snapshot(self, sandbox_id: str, req: m.SnapshotRequest) -> m.SandboxSnapshot:
        self._control("snapshot")

    async def snapshot_info(self, snapshot_id: str) -> m.SandboxSnapshot:
        self._control("snapshot_info")

    async def list_snapshots(self, req: m.SnapshotQuery) -> m.SnapshotList:
        self._control("list_snapshots")

    async def delete_snapshot(self, snapshot_id: str) -> m.SandboxSnapshot:
        self._control("delete_snapshot")

    async def aclose(self) -> None:
        reporter, self._reporter = self._reporter, None
        if reporter is not None:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        for agent in list(self.agents.values()):
            await agent.close()
        self.agents = {}
        await self.store.aclose()
