"""``SandboxPool``: a warm pool, embedded or on a server, from the SDK.

    async with SandboxPool(SandboxConfig(), name="py", size=8) as pool:
        async with pool.sandbox() as sb:         # a ready member, in milliseconds
            await sb.arun("echo hi")
        sb = await pool.claim(); await sb.recycle()  # back to the pool, reset and checked
        pool.stats()                              # ready, starting, claimed, claims, misses, refill

Embedded, the pool lives in this event loop's shared sandbox manager, so ``Sandbox(config,
pool="py")`` anywhere in the loop claims from it; on a server, every client of that server can.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...core.progress import Progress, progress
from .. import models as m
from ..api import SandboxAPI
from ..config import SandboxConfig
from ..errors import SandboxClosedError, SandboxNotFoundError
from .sandbox import Sandbox

PROGRESS_MIN = 8  # pools at least this big show their members starting (on a terminal)


class SandboxPool:
    def __init__(self, config: SandboxConfig | None = None, *, name: str, size: int = 4, max_size: int | None = None):
        self.config = config or SandboxConfig()
        self.request = m.PoolRequest(name=name, spec=self.config.spec(), size=size, max_size=max_size)
        self.name = name
        self._api: SandboxAPI | None = None

    async def start(self) -> SandboxPool:
        """Start the pool's ``size`` members; fails (naming the pool, and the image if one is missing)
        if they cannot start."""
        if self._api is None:
            api = Sandbox(self.config)._make_api()
            try:
                with progress(f"SandboxPool {self.name}: members ready", self.request.size, "sandboxes") as bar:
                    if bar.mode == "off" or self.request.size < PROGRESS_MIN:
                        await api.create_pool(self.request)
                    else:
                        await self._watched(api, bar)
            except BaseException:
                await api.aclose()
                raise
            self._api = api
        return self

    async def _watched(self, api: SandboxAPI, bar: Progress) -> None:
        """``create_pool``, with the count of ready members on ``bar`` while it runs."""

        async def watch() -> None:
            while True:
                await asyncio.sleep(0.25)
                for pool in (await api.list_pools()).pools:
                    if pool.name == self.name:
                        bar.update(pool.ready)

        watcher = asyncio.ensure_future(watch())
        try:
            await api.create_pool(self.request)
            bar.update(self.request.size)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    def sandbox(self, **overrides: Any) -> Sandbox:
        """A `Sandbox` that, once started, is a member of this pool (``overrides``: labels, ttl, lease)."""
        return Sandbox(self.config, pool=self.name, **overrides)

    async def claim(self, **overrides: Any) -> Sandbox:
        return await self.sandbox(**overrides).start()

    async def stats(self) -> m.PoolStats:
        api = self._require("stats")
        for pool in (await api.list_pools()).pools:
            if pool.name == self.name:
                return pool
        raise SandboxNotFoundError(f"`SandboxPool.stats`: pool {self.name!r} is gone from its manager.")

    async def close(self) -> None:
        """Remove the ready members; sandboxes already claimed stay with their holders."""
        api, self._api = self._api, None
        if api is not None:
            try:
                await api.delete_pool(self.name)
            finally:
                await api.aclose()

    async def __aenter__(self) -> SandboxPool:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _require(self, call: str) -> SandboxAPI:
        if self._api is None:
            raise SandboxClosedError(
                f"`SandboxPool.{call}`: the pool is not started (or closed); `await pool.start()` first."
            )
        return self._api
