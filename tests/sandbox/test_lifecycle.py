"""Lifecycle: stop, TTL reaping, listing, unknown ids, and cleanup after a crashed server or process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import textwrap

import httpx
import pytest

from rock_envs.sandbox import Sandbox, SandboxClosedError, SandboxConfig, SandboxNotFoundError, SyncSandbox
from tests.support.paths import PYTHON, short_tmp
from tests.support.processes import agent_pids, settle
from tests.support.server import SERVE_RUNTIMES, ServerProcess

pytestmark = pytest.mark.anyio


async def test_stop_is_idempotent_and_calls_after_stop_fail(config: SandboxConfig) -> None:
    sb = Sandbox(config)
    with pytest.raises(SandboxClosedError, match="is not started"):
        await sb.arun("echo")
    await sb.start()
    await sb.stop()
    await sb.stop()
    with pytest.raises(SandboxClosedError, match=r"`Sandbox.arun`: the sandbox was stopped"):
        await sb.arun("echo")


async def test_idle_sandbox_is_reaped_after_its_ttl(config: SandboxConfig) -> None:
    sb = await Sandbox(config.model_copy(update={"ttl": 1.0})).start()
    try:
        await asyncio.sleep(3.0)
        with pytest.raises(SandboxNotFoundError, match=sb.id):
            await sb.arun("echo")
    finally:
        await sb.stop()  # already reaped: stop() still releases the transport and does not raise


async def test_a_busy_sandbox_is_not_reaped(config: SandboxConfig) -> None:
    async with Sandbox(config.model_copy(update={"ttl": 1.0})) as sb:
        result = await sb.arun("sleep 2.5; echo done", timeout=30)
        assert result.output == "done\n"
        assert (await sb.arun("echo still")).output == "still\n"


async def test_list_status_and_unknown_ids(server: ServerProcess) -> None:
    url, token = server.url, server.token
    config = SandboxConfig(base_url=url, token=token, labels={"team": "t1"})
    async with Sandbox(config) as sb:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            listed = (await client.get("/sandboxes", params={"label": "team=t1"})).json()["sandboxes"]
            assert [s["id"] for s in listed] == [sb.id]
            assert (await client.get("/sandboxes", params={"label": "team=nope"})).json()["sandboxes"] == []
            missing = await client.post("/sandboxes/sb-000000000000/commands", json={"cmd": "echo"})
            assert missing.status_code == 404 and "sb-000000000000" in missing.json()["error"]["message"]
        assert (await sb.status()).status == "running"


def test_sync_twin(config: SandboxConfig) -> None:
    with SyncSandbox(config) as sb:
        sb.create_session("s")
        sb.run("cd /tmp && export A=1", session="s")
        assert sb.run("pwd; echo $A", session="s").output == "/tmp\n1\n"
        sb.write_file("f.txt", "x")
        assert sb.read_file("f.txt") == "x"
        job = sb.run_job("echo j")
        assert sb.wait_job(job.job_id, timeout=30).exit_code == 0
        assert [e for e in sb.stream("echo streamed")][-1].output == "streamed\n"  # type: ignore[union-attr]


def test_server_killed_with_sigkill_leaves_nothing_after_restart() -> None:
    before = agent_pids()
    srv = ServerProcess(SERVE_RUNTIMES).start()
    try:
        with SyncSandbox(SandboxConfig(base_url=srv.url, token=srv.token)) as sb:
            sb.run_job("sleep 600")
            sb.create_session("s")
            sb.run("sleep 500 &", session="s")
            srv.stop(signal.SIGKILL)
            srv.start()  # the same runtime dir: the new server reaps what the old one left
            assert httpx.get(srv.url + "/sandboxes", headers=srv.headers).json() == {"sandboxes": []}
        leftover = agent_pids() - before - {srv.pid()}
        # the new server's own zygote is expected; no sandbox process of the first server may remain
        for pid in leftover:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                assert b"zygote" in fh.read(), f"leftover sandbox process {pid}"
        assert os.listdir(os.path.join(srv.runtime_dir, "state")) == []
    finally:
        srv.stop()


def test_embedded_owner_crash_takes_its_sandboxes_along() -> None:
    runtime_dir = short_tmp()
    script = textwrap.dedent(f"""
        import os
        from rock_envs.sandbox import SyncSandbox, SandboxConfig
        sb = SyncSandbox(SandboxConfig(runtime_dir={runtime_dir!r})).start()
        sb.run_job("sleep 600")
        print(sb.id, flush=True)
        os._exit(0)  # no cleanup at all
    """)
    before = agent_pids()
    out = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # the agents notice their owner's lifeline closed and exit, taking their namespaces along
    settle(lambda: not agent_pids() - before, timeout=10)
    assert agent_pids() - before == set()

    async def reap() -> int:
        from rock_envs.sandbox.manager import SandboxManager

        manager = SandboxManager(runtime_dir=runtime_dir)
        count = await manager.reap_leftovers()
        await manager.close()
        return count

    assert asyncio.run(reap()) == 1
    assert os.listdir(os.path.join(runtime_dir, "state")) == []
