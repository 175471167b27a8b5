"""``RedisStore``: the control plane's records in a real Redis, read by every data replica.

Layout (``ns`` is the namespace, ``rock-envs`` by default, so one Redis can hold several clusters):

    HASH    ns:sandboxes   id -> SandboxRecord JSON       written by the control plane only
    HASH    ns:used        id -> last use (time.time())   written by replicas, read by the reaper
    CHANNEL ns:changed     an id whose record was put or removed

A replica reads a record once and then serves it from memory: every put and remove is published on
``ns:changed``, and the replica's subscription drops that id from its cache, so the hot path (exec,
frames) costs no Redis round trip. A record read while a change arrived is not cached (the read may
predate the change); while the subscription is down, nothing is cached and every read goes to Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from .store import SandboxRecord, SandboxStore, StoreUnreachableError

CONNECT_TIMEOUT = 5.0


class RedisStore(SandboxStore):
    """``RedisStore.connect(url)`` checks Redis answers; ``watch=True`` (replicas) caches records."""

    def __init__(self, url: str, namespace: str = "rock-envs", watch: bool = False):
        from redis import asyncio as aioredis

        self.url, self.ns = url, namespace
        self.redis: Any = aioredis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=30, health_check_interval=10
        )
        self.records_key, self.used_key, self.channel = (
            f"{namespace}:sandboxes",
            f"{namespace}:used",
            f"{namespace}:changed",
        )
        self.cache: dict[str, SandboxRecord] = {}
        self.caching = False
        self.epoch = 0  # bumped by every change seen: a read that spans one is not cached
        self._watcher: asyncio.Task[None] | None = asyncio.create_task(self._watch()) if watch else None

    @classmethod
    async def connect(cls, url: str, namespace: str = "rock-envs", watch: bool = False) -> RedisStore:
        store = cls(url, namespace, watch)
        try:
            await store._ping()
        except BaseException:
            await store.aclose()
            raise
        return store

    async def _ping(self) -> None:
        await self._do("connect", self.redis.ping())

    async def _do(self, call: str, awaitable: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise StoreUnreachableError(
                f"`{call}`: the shared store at {self.url} did not answer ({type(exc).__name__}: {exc}); "
                "is `redis-server` running there (`--redis URL` of `rock-envs serve --role control`)?"
            ) from exc

    # ---- the control plane's writes -----------------------------------------------------------

    async def put(self, record: SandboxRecord) -> None:
        sid = record.info.id
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.records_key, sid, record.model_dump_json()).publish(self.channel, sid)
        await self._do("put", pipe.execute())

    async def remove(self, sandbox_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.records_key, sandbox_id).hdel(self.used_key, sandbox_id).publish(self.channel, sandbox_id)
        await self._do("remove", pipe.execute())

    # ---- reads --------------------------------------------------------------------------------

    async def get(self, sandbox_id: str, fresh: bool = False) -> SandboxRecord | None:
        if self.caching and not fresh and sandbox_id in self.cache:
            return self.cache[sandbox_id]
        epoch = self.epoch
        raw = await self._do("get", self.redis.hget(self.records_key, sandbox_id))
        record = SandboxRecord.model_validate_json(raw) if raw is not None else None
        if record is not None and self.caching and epoch == self.epoch:
            self.cache[sandbox_id] = record
        return record

    async def all(self) -> list[SandboxRecord]:
        rows = await self._do("all", self.redis.hgetall(self.records_key))
        return [SandboxRecord.model_validate_json(raw) for raw in rows.values()]

    async def touch(self, used: dict[str, float]) -> None:
        if used:
            await self._do("touch", self.redis.hset(self.used_key, mapping=used))

    async def last_used(self, sandbox_ids: list[str]) -> dict[str, float]:
        if not sandbox_ids:
            return {}
        values = await self._do("last_used", self.redis.hmget(self.used_key, sandbox_ids))
        return {sid: float(v) for sid, v in zip(sandbox_ids, values) if v is not None}

    # ---- the replicas' cache ------------------------------------------------------------------

    async def _watch(self) -> None:
        """Keep the cache coherent with ``ns:changed``; while it is not subscribed, cache nothing."""
        from redis.exceptions import RedisError

        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.cache.clear()
                self.caching = True
                async for message in pubsub.listen():
                    self.epoch += 1
                    self.cache.pop(message["data"].decode(), None)
            except (RedisError, OSError):
                pass
            finally:
                self.caching = False
                self.cache.clear()
                self.epoch += 1
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(0.5)

    async def aclose(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await self.redis.aclose()
