"""The SDK's lease keeper: one per server (or embedded manager) per event loop, renewing the owner
leases of every open `Sandbox` handle of that loop together.

One request per period for all of them, not one per sandbox: a trainer holding 1,000 sandboxes at
the default 60 s lease would otherwise send 50 renewals a second, each a full HTTP round trip the
server serves beside the trainer's real calls. A handle joins with `hold` once started and leaves
with `drop` when it stops, detaches or recycles; the keeper's task ends (closing its connection)
when nobody is held, and a sandbox the server no longer knows is dropped on the first renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from typing import Callable

from .. import models as m
from ..api import SandboxAPI
from ..errors import SandboxError

Key = tuple[str | None, str | None, str | None]  # (base_url, token, runtime_dir)
_KEEPERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Key, LeaseKeeper]] = weakref.WeakKeyDictionary()


class LeaseKeeper:
    def __init__(self, key: Key, make_api: Callable[[], SandboxAPI]):
        self.key, self.make_api = key, make_api
        self.held: dict[str, tuple[float, float]] = {}  # sandbox id -> (renewal period, next renewal at)
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, key: Key, make_api: Callable[[], SandboxAPI]) -> LeaseKeeper:
        """The running loop's keeper for `key`, made on first use."""
        keepers = _KEEPERS.setdefault(asyncio.get_running_loop(), {})
        if key not in keepers:
            keepers[key] = cls(key, make_api)
        return keepers[key]

    def hold(self, sandbox_id: str, lease: float) -> None:
        """Renew `sandbox_id`'s lease a third of `lease` apart (so two renewals may fail in a row)."""
        period = lease / 3
        self.held[sandbox_id] = (period, time.monotonic() + period)
        self.changed.set()
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    def drop(self, sandbox_id: str) -> None:
        self.held.pop(sandbox_id, None)
        self.changed.set()

    async def _run(self) -> None:
        api = self.make_api()
        try:
            while self.held:
                self.changed.clear()
                wait = min(at for _, at in self.held.values()) - time.monotonic()
                if wait > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self.changed.wait(), wait)
                    continue  # woken by a hold or drop, or on time: look at the due times again
                await self._renew_due(api)
        finally:
            _KEEPERS.get(asyncio.get_running_loop(), {}).pop(self.key, None)
            await api.aclose()

    async def _renew_due(self, api: SandboxAPI) -> None:
        now = time.monotonic()
        # every lease due within half its period goes in this request too: fewer, fuller requests
        due = [sid for sid, (period, at) in self.held.items() if at <= now + period / 2]
        try:
            result = await api.renew_all(m.LeasesRequest(sandbox_ids=due))
        except (SandboxError, OSError):
            result = None  # the server is briefly unreachable: each lease has two more periods
        for sid in due:
            if sid in self.held:
                period, _ = self.held[sid]
                self.held[sid] = (period, now + period)
        for sid in result.missing if result is not None else []:
            self.held.pop(sid, None)  # gone (stopped elsewhere, or reaped): nothing left to hold
