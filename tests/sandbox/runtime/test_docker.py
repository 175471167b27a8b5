"""The docker runtime's own promises: container settings, labels, TTL, and no leaks when owners die."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import textwrap
from typing import Callable

import docker
import httpx
import pytest

from rock_envs.sandbox import Sandbox, SandboxConfig, SyncSandbox
from tests.support import docker_support
from tests.support.paths import PYTHON, short_tmp
from tests.support.processes import settle
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


def _wait_until(check: Callable[[], object]) -> bool:
    """Docker takes a while to remove a container: poll for a minute, gently."""
    return settle(check, timeout=60, interval=0.2)


def _owner(runtime_dir: str) -> str:
    with open(os.path.join(runtime_dir, "owner")) as fh:
        return fh.read().strip()


async def test_container_is_limited_labelled_and_unprivileged(image: str) -> None:
    config = SandboxConfig(
        runtime="docker",
        image=image,
        runtime_dir=short_tmp(),
        cpus=0.5,
        memory="256m",
        pids_limit=100,
        labels={"team": "rl"},
    )
    async with Sandbox(config) as sb:
        [found] = docker_support.containers(**{"rock-envs.sandbox": sb.id})
        container = docker.from_env().containers.get(found.id)
        host = container.attrs["HostConfig"]
        assert host["Privileged"] is False and host["Init"] is True
        assert host["PidsLimit"] == 100 and host["Memory"] == 256 * 1024 * 1024 and host["NanoCpus"] == 5 * 10**8
        assert host["NetworkMode"] == "none" and host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] is True
        labels = container.labels
        assert labels["rock-envs.owner"] == _owner(config.runtime_dir or "")
        assert labels["rock-envs.user.team"] == "rl"
        assert labels["rock-envs.manager"].startswith(f"{os.getpid()}:")
        result = await sb.arun("tail -n +3 /proc/net/dev | cut -d: -f1; grep CapEff /proc/self/status; pwd")
        assert result.output.split() == ["lo", "CapEff:", "0000000000000000", "/sandbox/root"]
        assert (await sb.arun("touch /usr/x")).exit_code != 0  # the image is read-only
        await sb.write_file("made-inside.txt", "hi")
        host_file = os.path.join(config.runtime_dir or "", "sandboxes", sb.id, "root", "made-inside.txt")
        assert open(host_file).read() == "hi"  # the bind mount: the caller can read what the sandbox wrote
    assert docker_support.containers(**{"rock-envs.sandbox": sb.id}) == []


async def test_a_container_is_removed_after_its_ttl(image: str) -> None:
    sb = Sandbox(SandboxConfig(runtime="docker", image=image, runtime_dir=short_tmp(), ttl=1))
    await sb.start()
    try:
        assert docker_support.containers(**{"rock-envs.sandbox": sb.id})
        for _ in range(300):  # the manager's reaper runs on this loop: yield to it
            if not docker_support.containers(**{"rock-envs.sandbox": sb.id}):
                break
            await asyncio.sleep(0.2)
        assert not docker_support.containers(**{"rock-envs.sandbox": sb.id})
    finally:
        try:
            await sb.stop()
        except Exception:  # noqa: BLE001 - already reaped: the manager forgot it
            pass


def test_sync_context_exit_removes_the_container(image: str) -> None:
    with SyncSandbox(SandboxConfig(runtime="docker", image=image, runtime_dir=short_tmp())) as sb:
        assert sb.run("echo hi").output == "hi\n"
        assert len(docker_support.containers(**{"rock-envs.sandbox": sb.id})) == 1
    assert docker_support.containers(**{"rock-envs.sandbox": sb.id}) == []


def test_a_missing_image_is_a_clear_error(image: str) -> None:
    from rock_envs.sandbox import SandboxStartError

    with pytest.raises(SandboxStartError, match="rock-envs image build"):
        with SyncSandbox(
            SandboxConfig(runtime="docker", image="rock-envs-test:no-such-image", runtime_dir=short_tmp())
        ):
            pass


OWNER = textwrap.dedent("""
    import sys, time
    from rock_envs.sandbox import SandboxConfig, SyncSandbox
    boxes = [SyncSandbox(SandboxConfig(runtime="docker", image=sys.argv[1], runtime_dir=sys.argv[2])).start()
             for _ in range(2)]
    print("up", flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_containers_die_with_their_owner(image: str, sig: int) -> None:
    runtime_dir = short_tmp()
    proc = subprocess.Popen([PYTHON, "-c", OWNER, image, runtime_dir], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        owner = _owner(runtime_dir)
        assert len(docker_support.containers(**{"rock-envs.owner": owner})) == 2
    finally:
        proc.send_signal(sig)
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
    # the agents lose their lifeline, exit, and docker removes their containers
    assert _wait_until(lambda: not docker_support.containers(**{"rock-envs.owner": owner}))


def _create(server: ServerProcess, image: str) -> str:
    r = httpx.post(
        server.url + "/sandboxes", json={"runtime": "docker", "image": image}, headers=server.headers, timeout=120
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_a_restarted_server_removes_what_a_killed_one_left(image: str) -> None:
    server = ServerProcess(["--runtime", "docker"]).start()
    try:
        _create(server, image), _create(server, image)
        owner = _owner(server.runtime_dir)
        assert len(docker_support.containers(**{"rock-envs.owner": owner})) == 2
        # A container whose agent never got its lifeline would outlive a SIGKILLed server on its own:
        # make one, labelled as this server's, to check that the restarted server sweeps it.
        assert server.proc is not None
        client = docker.from_env()
        client.containers.run(
            image,
            ["sleep", "600"],
            detach=True,
            init=True,
            network_mode="none",
            labels={
                "rock-envs.owner": owner,
                "rock-envs.sandbox": "sb-orphan",
                "rock-envs.host": os.uname().nodename,
                "rock-envs.manager": f"{server.proc.pid}:0",
            },
        )
        client.close()
        server.stop(signal.SIGKILL)
        server.start()  # the same runtime dir, so the same owner
        fresh = _create(server, image)

        def others() -> list[object]:
            return [
                c
                for c in docker_support.containers(**{"rock-envs.owner": owner})
                if c.labels["rock-envs.sandbox"] != fresh
            ]

        assert _wait_until(lambda: not others())
        assert len(docker_support.containers(**{"rock-envs.owner": owner})) == 1
    finally:
        server.stop(signal.SIGTERM)
    assert _wait_until(lambda: not docker_support.containers(**{"rock-envs.owner": owner}))
