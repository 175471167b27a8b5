"""Limits and isolation: a fork bomb and a memory hog are stopped; the server and other sandboxes go on."""

from __future__ import annotations

import os

import httpx
import pytest

from rock_envs.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.anyio


async def test_fork_bomb_is_contained(config: SandboxConfig, server: object) -> None:
    async with Sandbox(config) as bystander, Sandbox(config.model_copy(update={"pids_limit": 64})) as bomb:
        result = await bomb.arun(":(){ :|:& };:", timeout=3)
        assert result.timed_out or result.exit_code != 0
        assert (await bystander.arun("echo fine")).output == "fine\n"
        assert httpx.get(server.url + "/health").status_code == 200  # type: ignore[attr-defined]
        # the bomb's own sandbox recovers once its command was killed
        after = await bomb.arun("echo recovered", timeout=30)
        assert after.output == "recovered\n"


async def test_memory_hog_is_stopped(config: SandboxConfig) -> None:
    async with Sandbox(config) as bystander, Sandbox(config.model_copy(update={"memory": "128m"})) as hog:
        result = await hog.arun("python3 -c 'x = bytearray(1 << 30); print(len(x))'", timeout=60)
        assert result.exit_code != 0 and result.output == ""
        assert (await hog.arun("echo still here")).output == "still here\n"
        assert (await bystander.arun("echo fine")).output == "fine\n"


async def test_isolation_no_network_private_tmp_readonly_host(sb: Sandbox) -> None:
    info = await sb.status()
    if "namespaces" not in info.isolation and "container" not in info.isolation:
        pytest.skip("namespaces need root on Linux; running degraded: " + ", ".join(info.isolation))
    devices = (await sb.arun("tail -n +3 /proc/net/dev | cut -d: -f1")).output.split()
    assert devices == ["lo"]
    processes = int((await sb.arun("ps -e --no-headers | wc -l")).output)
    assert 4 <= processes <= 6  # its own pid namespace: init, the agent, the shell, ps (and its pipe)
    assert (await sb.arun("touch /usr/rock-envs-test")).exit_code != 0
    await sb.arun("echo mine > /tmp/only-here")
    assert (await sb.arun("cat /tmp/only-here")).output == "mine\n"
    assert (await sb.arun("grep CapEff /proc/self/status")).output.split()[1] == "0000000000000000"


async def test_network_on_request(config: SandboxConfig) -> None:
    async with Sandbox(config.model_copy(update={"network": True})) as sb:
        if config.runtime == "process":  # shares the host's network namespace (the server runs on this host)
            assert (await sb.arun("readlink /proc/self/ns/net")).output.strip() == os.readlink("/proc/self/ns/net")
