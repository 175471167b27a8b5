"""Sandbox snapshots, embedded and through the server, on the process and docker runtimes: new
sandboxes from a snapshot, fork, restoring a crashed sandbox, listing and deleting, bad input."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from rock_envs.sandbox import (
    CheckpointUnavailableError,
    InvalidRequestError,
    Sandbox,
    SandboxConfig,
    SandboxDiedError,
    SandboxNotFoundError,
    SnapshotNotFoundError,
    SyncSandbox,
)
from tests.sandbox.test_agent_death import KILL_THE_AGENT

pytestmark = pytest.mark.anyio

FILES = "mkdir -p data/deep && head -c 1048576 /dev/urandom > data/blob && echo v1 > note && chmod 750 data/deep"
CHECK = "cat note; stat -c %a data/deep; md5sum data/blob | cut -c1-32"


async def test_a_snapshot_starts_new_sandboxes_with_its_files(sb: Sandbox, config: SandboxConfig) -> None:
    await sb.arun(FILES)
    before = (await sb.arun(CHECK)).output
    snapshot = await sb.snapshot(name="first")
    assert (snapshot.sandbox_id, snapshot.runtime, snapshot.name) == (sb.id, config.runtime, "first")
    assert snapshot.size >= 1048576 and (snapshot.image is not None) == (config.runtime == "docker")
    await sb.arun("echo v2 > note; rm data/blob")  # the snapshot keeps what was there
    try:
        async with await Sandbox.from_snapshot(snapshot, config) as clone:
            assert (await clone.arun(CHECK)).output == before
            assert clone.info is not None and clone.info.spec.snapshot == snapshot.id
        async with Sandbox(config.model_copy(update={"snapshot": snapshot.id})) as again:  # SandboxConfig(snapshot=)
            assert (await again.arun("cat note")).output == "v1\n"
        assert snapshot.id in [s.id for s in await Sandbox.list_snapshots(config)]
        assert (await Sandbox.snapshot_info(snapshot.id, config)).sandbox_id == sb.id
        assert (await sb.arun("cat note")).output == "v2\n"  # the original went on as it was
        async with await Sandbox.from_snapshot(snapshot, config) as kept:
            await Sandbox.delete_snapshot(snapshot, config)
            assert (await kept.arun("cat note")).output == "v1\n"  # a sandbox outlives its snapshot
    finally:
        try:
            await Sandbox.delete_snapshot(snapshot, config)
        except SnapshotNotFoundError:
            pass
    assert snapshot.id not in [s.id for s in await Sandbox.list_snapshots(config)]
    with pytest.raises(SnapshotNotFoundError, match=f"no sandbox snapshot '{snapshot.id}'"):
        await Sandbox.from_snapshot(snapshot, config)
    with pytest.raises(SnapshotNotFoundError, match=f"no sandbox snapshot '{snapshot.id}'"):
        await Sandbox.delete_snapshot(snapshot.id, config)


async def test_fork_starts_n_independent_sandboxes_from_the_current_state(sb: Sandbox, config: SandboxConfig) -> None:
    await sb.arun(FILES)
    clones = await sb.fork(3)
    try:
        assert len({c.id for c in clones} | {sb.id}) == 4
        for k, clone in enumerate(clones):
            assert (await clone.arun("cat note")).output == "v1\n"
            await clone.arun(f"echo clone{k} > note")
        assert [(await c.arun("cat note")).output for c in clones] == ["clone0\n", "clone1\n", "clone2\n"]
        assert (await sb.arun("cat note")).output == "v1\n"
        assert not [s for s in await Sandbox.list_snapshots(config) if s.sandbox_id == sb.id]  # fork's own is gone
    finally:
        for clone in clones:
            await clone.stop()


async def test_a_crashed_sandbox_is_restored_from_its_last_snapshot_in_one_call(config: SandboxConfig) -> None:
    spec = config.model_copy(update={"env": {"WHO": "me"}, "labels": {"team": "rl"}})
    async with Sandbox(spec) as sb:
        await sb.arun(FILES)
        snapshot = await sb.snapshot()
        with pytest.raises(SandboxDiedError):
            await sb.arun(KILL_THE_AGENT, timeout=60)
    try:
        async with await Sandbox.restore(snapshot, config) as back:
            assert (await back.arun("cat note; echo $WHO")).output == "v1\nme\n"
            assert back.info is not None and back.info.spec.labels == {"team": "rl"}
    finally:
        await Sandbox.delete_snapshot(snapshot, config)


async def test_a_snapshot_of_a_deleted_sandbox_is_a_clear_error(config: SandboxConfig) -> None:
    async with Sandbox(config.model_copy(update={"ttl": 0.5})) as sb:
        for _ in range(100):  # reaped once idle past its TTL, as by any other owner
            await asyncio.sleep(0.1)
            try:
                await sb.status()
            except SandboxNotFoundError:
                break
        with pytest.raises(SandboxNotFoundError, match=f"`snapshot`: no sandbox '{sb.id}'"):
            await sb.snapshot()


async def test_bad_input_is_a_clear_error_and_the_sandbox_goes_on(sb: Sandbox, config: SandboxConfig) -> None:
    with pytest.raises(SnapshotNotFoundError, match="no sandbox snapshot 'snap-000000000000'"):
        await Sandbox.from_snapshot("snap-000000000000", config)
    snapshot = await sb.snapshot()
    try:
        other = "docker" if config.runtime == "process" else "process"
        with pytest.raises(InvalidRequestError, match=f"is of a {config.runtime} sandbox.*runtime={config.runtime!r}"):
            await Sandbox.from_snapshot(snapshot.id, config, runtime=other)
    finally:
        await Sandbox.delete_snapshot(snapshot, config)
    why = r"cannot checkpoint processes here: (CRIU is not installed|`\S*criu check` fails: |CRIU itself works here)"
    with pytest.raises(CheckpointUnavailableError, match=r"`snapshot\(memory=True\)`: the \w+ runtime " + why):
        await sb.snapshot(memory=True)
    assert not [s for s in await Sandbox.list_snapshots(config) if s.sandbox_id == sb.id]  # nothing half-made
    assert (await sb.arun("echo still here")).output == "still here\n"


def test_the_blocking_twin_snapshots_forks_and_restores(config: SandboxConfig) -> None:
    with SyncSandbox(config) as sb:
        sb.run("echo sync > note")
        snapshot = sb.snapshot(name="sync")
        clones = sb.fork(2)
        try:
            assert [c.run("cat note").output for c in clones] == ["sync\n", "sync\n"]
        finally:
            for clone in clones:
                clone.stop()
    with SyncSandbox.restore(snapshot, config) as back:
        assert back.run("cat note").output == "sync\n"
    assert "sync" in [s.name for s in SyncSandbox.list_snapshots(config)]
    SyncSandbox.delete_snapshot(snapshot, config)
    assert snapshot.id not in [s.id for s in SyncSandbox.list_snapshots(config)]


@pytest.mark.docker
async def test_docker_commits_the_containers_own_changes_and_removes_the_image_after(image: str) -> None:
    import docker

    from rock_envs.sandbox.local import LocalSandboxAPI
    from rock_envs.sandbox.manager import SandboxManager
    from rock_envs.sandbox.models import RunRequest, SandboxSpec, SnapshotRequest
    from tests.support.paths import short_tmp

    manager = SandboxManager(short_tmp(), runtime_options={"docker": {"image": image, "read_only": False}})
    api = LocalSandboxAPI(manager)
    client = docker.from_env()
    try:
        first = await api.create(SandboxSpec(runtime="docker"))
        await api.run(first.id, RunRequest(cmd="echo inside > /etc/rock-marker"))  # outside the sandbox's tree
        snapshot = await api.snapshot(first.id, SnapshotRequest())
        assert snapshot.image and client.images.get(snapshot.image).labels["rock-envs.snapshot"] == snapshot.id
        clone = await api.create(SandboxSpec(runtime="docker", snapshot=snapshot.id))
        assert clone.spec.image == snapshot.image
        assert (await api.run(clone.id, RunRequest(cmd="cat /etc/rock-marker"))).output == "inside\n"
        await api.delete_snapshot(snapshot.id)  # its image is in use: untagged now, removed with the clone
        assert (await api.run(clone.id, RunRequest(cmd="cat /etc/rock-marker"))).output == "inside\n"
        await api.delete(clone.id)
        left = client.images.list(filters={"label": f"rock-envs.snapshot={snapshot.id}"})
        assert not left, f"snapshot image left behind: {left}"
    finally:
        await manager.close()
        client.close()
        shutil.rmtree(manager.state.path, ignore_errors=True)


async def test_a_writable_roots_changes_to_slash_are_in_the_snapshot(config: SandboxConfig) -> None:
    writes = "echo kept > /etc/rock-marker && mkdir -p /opt/rock && echo deep > /opt/rock/f && rm /etc/issue"
    check = "cat /etc/rock-marker /opt/rock/f; test -e /etc/issue && echo issue || echo no-issue"
    async with Sandbox(config.model_copy(update={"writable_root": True})) as sb:
        assert (await sb.arun(writes)).exit_code == 0
        snapshot = await sb.snapshot()
    try:
        async with await Sandbox.from_snapshot(snapshot, config) as clone:  # a writable root again, by itself
            assert clone.info is not None and clone.info.spec.writable_root
            assert (await clone.arun(check)).output == "kept\ndeep\nno-issue\n"
        async with Sandbox(config) as plain:  # the host's (or image's) own files were never touched
            assert (await plain.arun("test -e /etc/rock-marker || echo clean")).output == "clean\n"
    finally:
        await Sandbox.delete_snapshot(snapshot, config)
