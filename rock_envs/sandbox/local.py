"""The local implementation of :class:`SandboxAPI`: a manager in this process. The embedded SDK calls it
directly; the server's routes are one line each over it. What goes to a sandbox's agent is written
once, in :class:`~rock_envs.sandbox.agent_api.AgentSandboxAPI`; this class reaches agents through the
manager, which owns them (and their lifelines)."""

from __future__ import annotations

import asyncio
import weakref
from typing import AsyncContextManager

from . import models as m
from .agent_api import AgentSandboxAPI
from .agent_client import AgentClient
from .manager import Entry, SandboxManager


class LocalSandboxAPI(AgentSandboxAPI):
    """Sandboxes of ``manager`` (one of its own when none is given: closed by :meth:`aclose`)."""

    def __init__(self, manager: SandboxManager | None = None, runtime_dir: str | None = None):
        self.owns_manager = manager is None
        self.manager = manager or SandboxManager(runtime_dir=runtime_dir)
        self._handles = 1  # `shared()` hands out one api to many holders; the last aclose closes it
        self._shared_in: dict[str | None, LocalSandboxAPI] | None = None  # the registry that holds it, if any
        self._runtime_dir = runtime_dir

    @classmethod
    def shared(cls, runtime_dir: str | None = None) -> LocalSandboxAPI:
        """The api of every embedded `Sandbox` of the running event loop on ``runtime_dir``: one
        manager, so one zygote and one reaper for them all (a manager each cost a Python start per
        sandbox and made concurrent starts slower than sequential ones). Each call is one handle;
        the manager closes with the last handle's :meth:`aclose`."""
        apis = _SHARED.setdefault(asyncio.get_running_loop(), {})
        api = apis.get(runtime_dir)
        if api is None:
            api = apis[runtime_dir] = cls(runtime_dir=runtime_dir)
            api._shared_in = apis
        else:
            api._handles += 1
        return api

    def use(self, sandbox_id: str, call: str) -> AsyncContextManager[AgentClient]:
        return self.manager.use(sandbox_id, call)

    def hold(self, sandbox_id: str, call: str) -> Entry:
        return self.manager.hold(sandbox_id, call)

    def release(self, held: object) -> None:
        assert isinstance(held, Entry)  # what hold() gave
        self.manager.release(held)

    # ---- lifecycle ----------------------------------------------------------------------------

    async def create(self, spec: m.SandboxSpec, timeout: float = 60.0) -> m.SandboxInfo:
        return await self.manager.create(spec, timeout)

    async def info(self, sandbox_id: str) -> m.SandboxInfo:
        return self.manager.info(sandbox_id)

    async def list(self, req: m.ListRequest) -> m.SandboxList:
        return m.SandboxList(sandboxes=self.manager.list(req.status, req.runtime, req.labels))

    async def delete(self, sandbox_id: str) -> m.SandboxInfo:
        return await self.manager.delete(sandbox_id)

    # ---- warm pools, leases, counts ------------------------------------------------------------

    async def create_pool(self, req: m.PoolRequest) -> m.PoolStats:
        return await self.manager.create_pool(req)

    async def list_pools(self) -> m.PoolList:
        return m.PoolList(pools=[pool.stats() for pool in self.manager.pools.values()])

    async def delete_pool(self, name: str) -> m.PoolStats:
        return await self.manager.delete_pool(name)

    async def claim(self, req: m.ClaimRequest) -> m.SandboxInfo:
        return await self.manager.claim(req)

    async def recycle(self, sandbox_id: str) -> m.SandboxInfo:
        return await self.manager.recycle(sandbox_id)

    async def renew(self, sandbox_id: str, req: m.LeaseRequest) -> m.SandboxInfo:
        return self.manager.renew(sandbox_id, req.release)

    async def renew_all(self, req: m.LeasesRequest) -> m.LeasesRenewed:
        renewed, missing = self.manager.renew_all(req.sandbox_ids)
        return m.LeasesRenewed(renewed=renewed, missing=missing)

    async def stats(self) -> m.ManagerStats:
        return self.manager.stats()

    # ---- snapshots ----------------------------------------------------------------------------

    async def snapshot(self, sandbox_id: str, req: m.SnapshotRequest) -> m.SandboxSnapshot:
        return await self.manager.snapshot(sandbox_id, req)

    async def snapshot_info(self, snapshot_id: str) -> m.SandboxSnapshot:
        return self.manager.get_snapshot(snapshot_id)

    async def list_snapshots(self, req: m.SnapshotQuery) -> m.SnapshotList:
        return m.SnapshotList(snapshots=self.manager.list_snapshots(req.name, req.sandbox_id))

    async def delete_snapshot(self, snapshot_id: str) -> m.SandboxSnapshot:
        return await self.manager.delete_snapshot(snapshot_id)

    async def aclose(self) -> None:
        self._handles -= 1
        if self._handles > 0:
            return
        if self._shared_in is not None:
            self._shared_in.pop(self._runtime_dir, None)
        if self.owns_manager:
            await self.manager.close()


# Per event loop (its asyncio objects belong to one loop), then per runtime dir.
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str | None, LocalSandboxAPI]] = (
    weakref.WeakKeyDictionary()
)
