"""Warm pools (claim, refill, max_size, recycle, isolation between members, a member's death),
the starting cap and owner leases; embedded and through a server, on each runtime."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from rock_envs.sandbox import (
    Sandbox,
    SandboxConfig,
    SandboxError,
    SandboxLimitError,
    SandboxNotFoundError,
    SandboxPool,
)
from rock_envs.sandbox.manager import SandboxManager
from rock_envs.sandbox.models import ListRequest, SandboxSpec
from tests.support.paths import short_tmp
from tests.support.processes import settle
from tests.support.server import ServerProcess

pytestmark = pytest.mark.anyio


async def _settled(check, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_claims_come_from_ready_members_and_the_pool_refills(config: SandboxConfig) -> None:
    async with SandboxPool(config, name="warm", size=2) as pool:
        first = await pool.stats()
        assert (first.ready, first.claims, first.misses) == (2, 0, 0)
        a, b, c = [await pool.claim(labels={"who": str(i)}) for i in range(3)]
        try:
            assert [s.info.pool for s in (a, b, c)] == ["warm"] * 3 and a.info.spec.labels == {"who": "0"}
            assert (await a.arun("echo hi")).output == "hi\n"
            stats = await pool.stats()
            assert stats.claims + stats.misses == 3 and stats.claims >= 2 and stats.claimed == 3
            assert await _settled(lambda: _ready(pool, 2))  # refilled in the background
            # a plain Sandbox whose config matches the pool's spec is served from it too
            async with Sandbox(config) as matched:
                assert matched.info.pool == "warm"
        finally:
            for s in (a, b, c):
                await s.stop()


async def _ready(pool: SandboxPool, n: int) -> bool:
    return (await pool.stats()).ready >= n


async def test_a_recycled_member_keeps_nothing_of_its_last_user(config: SandboxConfig) -> None:
    async with SandboxPool(config, name="one", size=1, max_size=1) as pool:
        sb = await pool.claim()
        old_id = sb.id
        look = "ls -A; ls -A /tmp; ps -e -o comm= | grep -x -e python -e sleep"  # init and the agent, no sleep
        fresh = (await sb.arun(look)).output  # a new member's view (files, its own dir's parent, processes)
        assert "sleep" not in fresh
        await sb.create_session("s", env={"SECRET": "x"})
        await sb.arun("export LEFT=1; echo data > mine.txt; mkdir d; echo t > /tmp/t; (sleep 600 &)", session="s")
        await sb.run_job("sleep 600")
        await sb.recycle()
        assert (await pool.stats()).recycled == 1
        async with pool.sandbox() as again:  # the only member: the recycled one, under a new id
            assert again.id != old_id
            assert (await again.arun(look)).output == fresh  # no file, no sleep of the last user
            assert (await again.arun("echo ${LEFT:-none} ${SECRET:-none}")).output == "none none\n"
            assert await again.list_jobs() == []
            await again.create_session("s")  # the last user's session of that name is gone
            assert (await again.arun("echo ${SECRET:-none}", session="s")).output == "none\n"
        api = Sandbox(config)._make_api()
        try:
            with pytest.raises(SandboxNotFoundError):
                await api.info(old_id)  # the last user's id no longer reaches it
        finally:
            await api.aclose()


async def test_max_size_makes_claims_wait_then_fail_naming_it(config: SandboxConfig) -> None:
    async with SandboxPool(config, name="cap", size=1, max_size=2) as pool:
        a, b = await pool.claim(), await pool.claim()
        with pytest.raises(SandboxLimitError, match=r"pool 'cap' has all 2 members \(its max_size\) claimed"):
            await pool.claim(startup_timeout=0.5)
        waiting = asyncio.ensure_future(pool.claim(startup_timeout=30))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await a.stop()  # a slot frees: the waiting claim gets a member
        c = await waiting
        assert (await c.arun("echo ok")).output == "ok\n"
        await b.stop()
        await c.stop()


def _pids_in(root: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/cwd") == root:
                    found.append(int(name))
            except OSError:
                pass
    return found


@pytest.mark.parametrize("runtime", ["process"], indirect=True)
async def test_a_member_that_dies_is_replaced(config: SandboxConfig) -> None:
    async with SandboxPool(config, name="mortal", size=2) as pool:
        api = Sandbox(config)._make_api()
        try:
            members = (await api.list(ListRequest(status="pooled"))).sandboxes
            assert len(members) == 2
            victim = members[0]
            for pid in _pids_in(victim.root):
                os.kill(pid, signal.SIGKILL)
            assert await _settled(lambda: _replaced(pool))
            assert await _settled(lambda: _ready(pool, 2))
            with pytest.raises(SandboxNotFoundError):
                await api.info(victim.id)
        finally:
            await api.aclose()
        async with pool.sandbox() as sb:
            assert (await sb.arun("echo alive")).output == "alive\n"


async def _replaced(pool: SandboxPool) -> bool:
    return (await pool.stats()).replaced >= 1


@pytest.mark.docker
async def test_a_pool_of_a_missing_image_fails_at_start_naming_it(mode: str, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("image")
    config = SandboxConfig(
        runtime="docker", image="rock-envs-missing:nope", runtime_dir=request.getfixturevalue("embedded_dir")
    )
    if mode == "server":
        srv = request.getfixturevalue("server")
        config = config.model_copy(update={"base_url": srv.url, "token": srv.token, "runtime_dir": None})
    with pytest.raises(SandboxError, match="rock-envs-missing:nope") as caught:
        await SandboxPool(config, name="ghost", size=2).start()
    assert "ghost" in str(caught.value)


@pytest.mark.docker
def test_serve_with_a_pool_of_a_missing_image_refuses_to_start(image: str) -> None:
    srv = ServerProcess(["--runtime", "docker", "--pool", "ghost=1:docker:rock-envs-missing:nope"])
    with pytest.raises(RuntimeError, match="the server exited") as caught:
        srv.start()
    assert "rock-envs-missing:nope" in str(caught.value) and "ghost" in str(caught.value)


def test_serve_pool_flag_gives_ready_members_to_any_client() -> None:
    srv = ServerProcess(["--pool", "small=2", "--max-starting", "3"]).start()
    try:
        pools = httpx.get(srv.url + "/pools", headers=srv.headers).json()["pools"]
        assert [(p["name"], p["ready"]) for p in pools] == [("small", 2)]
        with pytest.raises(RuntimeError, match=r"`--pool bad`: expected NAME=SIZE"):
            ServerProcess(["--pool", "bad"]).start()  # a malformed flag: a clear refusal, no server
        claim = httpx.post(srv.url + "/pools/small/claim", headers=srv.headers, json={"pool": "small"})
        assert claim.status_code == 201 and claim.json()["pool"] == "small"
        stats = httpx.get(srv.url + "/stats", headers=srv.headers).json()
        assert stats["running"] == 1 and stats["max_starting"] == 3 and stats["pooled"] >= 1
    finally:
        srv.stop()


async def test_creates_past_max_starting_wait_in_line_and_time_out_naming_the_cap() -> None:
    manager = SandboxManager(runtime_dir=short_tmp(), max_starting=2)
    try:
        seen_waiting = 0

        async def watch() -> None:
            nonlocal seen_waiting
            while True:
                seen_waiting = max(seen_waiting, manager.stats().waiting_to_start)
                await asyncio.sleep(0.001)

        watcher = asyncio.ensure_future(watch())
        infos = await asyncio.gather(*(manager.create(SandboxSpec()) for _ in range(8)))
        watcher.cancel()
        assert len({i.id for i in infos}) == 8 and seen_waiting > 0
        slow = [asyncio.ensure_future(manager.create(SandboxSpec())) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(SandboxLimitError, match="max_starting"):
            await manager.create(SandboxSpec(), timeout=0.001)
        await asyncio.gather(*slow)
        assert manager.stats().running == 10
    finally:
        await manager.close()


def test_a_client_that_vanishes_loses_its_sandboxes_within_its_lease(server: ServerProcess) -> None:
    script = textwrap.dedent(f"""
        import asyncio, sys
        from rock_envs.sandbox import Sandbox, SandboxConfig
        async def main():
            config = SandboxConfig(base_url={server.url!r}, token={server.token!r}, lease=3.0, ttl=0)
            held = [await Sandbox(config).start() for _ in range(3)]
            print(" ".join(sb.id for sb in held), flush=True)
            await asyncio.sleep(600)
        asyncio.run(main())
    """)
    client = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        sids = client.stdout.readline().split()  # type: ignore[union-attr]
        time.sleep(7.0)  # held past twice their lease: the client's lease keeper renews all three
        assert [httpx.get(f"{server.url}/sandboxes/{sid}", headers=server.headers).status_code for sid in sids] == [
            200
        ] * 3
        client.send_signal(signal.SIGKILL)
        gone = lambda: all(  # noqa: E731
            httpx.get(f"{server.url}/sandboxes/{sid}", headers=server.headers).status_code == 404 for sid in sids
        )
        assert settle(gone)
        assert httpx.get(server.url + "/stats", headers=server.headers).json()["lease_expired"] >= 3
    finally:
        client.kill()
        client.wait()


async def test_one_request_renews_many_leases_and_names_the_unknown(server: ServerProcess) -> None:
    config = SandboxConfig(base_url=server.url, token=server.token, lease=None)
    a, b = [await Sandbox(config).start() for _ in range(2)]
    stopped = await Sandbox(config).start()
    await stopped.stop()
    try:
        body = {"sandbox_ids": [a.id, "no-such-sandbox", b.id, stopped.id]}
        r = httpx.post(server.url + "/leases", json=body, headers=server.headers)
        assert r.status_code == 200
        assert r.json() == {"renewed": [a.id, b.id], "missing": ["no-such-sandbox", stopped.id]}
        bad = httpx.post(server.url + "/leases", json={"sandbox_ids": "a"}, headers=server.headers)
        assert bad.status_code == 422 and "sandbox_ids" in bad.text
        assert (await a.arun("echo on")).output == "on\n"  # the server went on
    finally:
        await a.stop()
        await b.stop()


async def test_a_detached_sandbox_outlives_its_lease(server: ServerProcess) -> None:
    config = SandboxConfig(base_url=server.url, token=server.token, lease=1.0)
    sb = await Sandbox(config).start()
    sid = sb.id
    await sb.detach()
    await asyncio.sleep(2.5)
    again = await Sandbox.attach(sid, config.model_copy(update={"lease": None}))
    assert (await again.arun("echo here")).output == "here\n"
    await again.stop()
