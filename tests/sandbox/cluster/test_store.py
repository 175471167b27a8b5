"""One suite over both stores: the single server's (in memory) and the control plane's (real Redis),
and a replica's cached reads of the latter kept coherent by what the control plane publishes."""

from __future__ import annotations

import asyncio
import os
import time
from typing import AsyncIterator

import pytest

from rock_envs.sandbox.cluster.redis_store import RedisStore
from rock_envs.sandbox.cluster.store import MemoryStore, SandboxRecord, SandboxStore, StoreUnreachableError
from rock_envs.sandbox.models import SandboxInfo, SandboxSpec
from tests.support.processes import settle
from tests.support.redis import RedisProcess
from tests.support.server import free_port

pytestmark = pytest.mark.anyio


def record(sid: str, status: str = "running") -> SandboxRecord:
    now = time.time()
    info = SandboxInfo(id=sid, status=status, spec=SandboxSpec(), created_at=now, last_used_at=now, root="/r")
    return SandboxRecord(info=info, socket=f"/run/{sid}/agent.sock", owner="o")


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SandboxStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    redis_server: RedisProcess = request.getfixturevalue("redis_server")
    made = await RedisStore.connect(redis_server.url, "store-" + os.urandom(4).hex())
    yield made
    await made.aclose()


async def test_records_and_last_uses(store: SandboxStore) -> None:
    assert await store.get("sb-a") is None
    await store.put(record("sb-a"))
    await store.put(record("sb-b"))
    await store.put(record("sb-a", status="dead"))  # a put replaces
    got = await store.get("sb-a")
    assert got is not None and got.info.status == "dead" and got.socket == "/run/sb-a/agent.sock"
    assert sorted(r.info.id for r in await store.all()) == ["sb-a", "sb-b"]
    await store.touch({"sb-a": 10.0, "sb-b": 20.0})
    await store.touch({"sb-a": 15.0})
    assert await store.last_used(["sb-a", "sb-b", "sb-c"]) == {"sb-a": 15.0, "sb-b": 20.0}
    await store.remove("sb-a")
    assert await store.get("sb-a") is None and await store.last_used(["sb-a"]) == {}
    await store.remove("sb-a")  # twice is fine
    assert [r.info.id for r in await store.all()] == ["sb-b"]


async def test_a_replicas_cache_follows_the_control_planes_writes(redis_server: RedisProcess) -> None:
    namespace = "watch-" + os.urandom(4).hex()
    control = await RedisStore.connect(redis_server.url, namespace)
    replica = await RedisStore.connect(redis_server.url, namespace, watch=True)
    try:
        assert await asyncio.to_thread(settle, lambda: replica.caching, 10)
        await control.put(record("sb-x"))
        assert (await replica.get("sb-x")) is not None
        assert "sb-x" in replica.cache  # served from memory from now on
        await control.put(record("sb-x", status="dead"))
        assert await asyncio.to_thread(settle, lambda: "sb-x" not in replica.cache, 10)
        got = await replica.get("sb-x")
        assert got is not None and got.info.status == "dead"
        await control.remove("sb-x")
        assert await asyncio.to_thread(settle, lambda: "sb-x" not in replica.cache, 10)
        assert await replica.get("sb-x") is None
    finally:
        await replica.aclose()
        await control.aclose()


async def test_an_unreachable_redis_is_a_clear_error() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreUnreachableError, match=f"the shared store at {url} did not answer"):
        await RedisStore.connect(url)
