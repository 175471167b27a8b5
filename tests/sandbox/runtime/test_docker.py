"""The docker runtime's own promises: container settings, labels, TTL, and no leaks when owners die."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import docker
import docker_support
import pytest

from rock_envs.sandbox import Sandbox, SandboxConfig, SyncSandbox

pytestmark = pytest.mark.anyio
PYTHON = sys.executable


def _short_dir() -> str:
    return tempfile.mkdtemp(prefix="rd-", dir="/tmp")


def _wait_until(predicate, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def _owner(runtime_dir: str) -> str:
    with open(os.path.join(runtime_dir, "owner")) as fh:
        return fh.read().strip()


async def test_container_is_limited_labelled_and_unprivileged(image: str) -> None:
    config = SandboxConfig(
        runtime="docker",
        image=image,
        runtime_dir=_short_dir(),
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
    sb = Sandbox(SandboxConfig(runtime="docker", image=image, runtime_dir=_short_dir(), ttl=1))
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
    with SyncSandbox(SandboxConfig(runtime="docker", image=image, runtime_dir=_short_dir())) as sb:
        assert sb.run("echo hi").output == "hi\n"
        assert len(docker_support.containers(**{"rock-envs.sandbox": sb.id})) == 1
    assert docker_support.containers(**{"rock-envs.sandbox": sb.id}) == []


def test_a_missing_image_is_a_clear_error(image: str) -> None:
    from rock_envs.sandbox import SandboxStartError

    with pytest.raises(SandboxStartError, match="rock-envs image build"):
        with SyncSandbox(
            SandboxConfig(runtime="docker", image="rock-envs-test:no-such-image", runtime_dir=_short_dir())
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
    runtime_dir = _short_dir()
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


class _Server:
    """``python -m rock_envs.sandbox.server --runtime docker`` on 127.0.0.1, restartable on the same runtime dir."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url, self.token, self.runtime_dir = (
            f"http://127.0.0.1:{self.port}",
            "t-" + os.urandom(8).hex(),
            _short_dir(),
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import httpx

        self.proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "rock_envs.sandbox.server",
                "--port",
                str(self.port),
                "--token",
                self.token,
                "--runtime-dir",
                self.runtime_dir,
                "--runtime",
                "docker",
            ],
            stdout=subprocess.DEVNULL,
        )

        def up() -> bool:
            try:
                return httpx.get(self.url + "/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        assert _wait_until(up), "the server did not come up"

    def kill(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)

    def create(self, image: str) -> str:
        import httpx

        r = httpx.post(
            self.url + "/sandboxes",
            json={"runtime": "docker", "image": image},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=120,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def test_a_restarted_server_removes_what_a_killed_one_left(image: str) -> None:
    server = _Server()
    server.start()
    try:
        server.create(image), server.create(image)
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
        server.kill(signal.SIGKILL)
        server.start()  # the same runtime dir, so the same owner
        fresh = server.create(image)

        def others() -> list[object]:
            return [
                c
                for c in docker_support.containers(**{"rock-envs.owner": owner})
                if c.labels["rock-envs.sandbox"] != fresh
            ]

        assert _wait_until(lambda: not others())
        assert len(docker_support.containers(**{"rock-envs.owner": owner})) == 1
    finally:
        server.kill(signal.SIGTERM)
    assert _wait_until(lambda: not docker_support.containers(**{"rock-envs.owner": owner}))
