"""A server SIGKILLed while it creates 1,000 sandboxes leaves nothing once a new one starts on its
runtime dir: no process, no cgroup, no mount (process runtime)."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx
import pytest

from rock_envs.sandbox.runtime.cgroups import Cgroups
from tests.support.processes import agent_pids, settle
from tests.support.server import ServerProcess

N = 1000


async def _create_until_killed(srv: ServerProcess, kill_at: int) -> int:
    """Ask for N sandboxes at once; SIGKILL the server once `kill_at` are running."""
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=srv.url, headers=srv.headers, timeout=120, limits=limits) as client:

        async def one() -> None:
            try:
                await client.post("/sandboxes", json={"ttl": 0})
            except httpx.TransportError:
                pass  # the server is gone: that is the point

        creates = [asyncio.ensure_future(one()) for _ in range(N)]
        while True:
            await asyncio.sleep(0.2)
            running = (await client.get("/stats")).json()["running"]
            if running >= kill_at:
                srv.stop(signal.SIGKILL)
                break
        await asyncio.gather(*creates)
        return running


@pytest.mark.slow
def test_a_server_killed_mid_creation_of_1000_sandboxes_leaves_nothing() -> None:
    before = agent_pids()
    srv = ServerProcess(["--max-sandboxes", str(N + 10)]).start()
    try:
        running = asyncio.run(_create_until_killed(srv, kill_at=N // 2))
        assert running >= N // 2
        state = os.path.join(srv.runtime_dir, "state")
        left = [name.removesuffix(".json") for name in os.listdir(state)]
        assert len(left) >= running  # the killed server's records: what the next one must sweep
        srv.start()  # the same runtime dir
        stats = httpx.get(srv.url + "/stats", headers=srv.headers, timeout=60).json()
        assert stats["swept"] >= running and stats["running"] == 0
        assert os.listdir(state) == []
        # only the new server's zygote may remain of everything this test started
        assert settle(lambda: all(_is_zygote(pid) for pid in agent_pids() - before - {srv.pid()}), timeout=60)
        cgroups = Cgroups()
        assert [sid for sid in left if cgroups.find(sid)] == []
        with open("/proc/self/mountinfo") as fh:
            assert srv.runtime_dir not in fh.read()
    finally:
        srv.stop()


def _is_zygote(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"zygote" in fh.read()
    except OSError:
        return True  # gone meanwhile
