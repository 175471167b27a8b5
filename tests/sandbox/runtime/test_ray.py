"""Sandboxes placed on a Ray node: an actor there starts the sandbox with the process runtime."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from tests.support.paths import short_tmp
from tests.support.processes import settle

pytestmark = pytest.mark.ray


def test_sandbox_started_through_a_ray_actor_runs_commands(ray_cluster):
    from rock_envs.sandbox.local import LocalSandboxAPI
    from rock_envs.sandbox.manager import SandboxManager
    from rock_envs.sandbox.models import RunRequest, SandboxSpec
    from rock_envs.sandbox.runtime.ray import NAMESPACE, RayPlacedRuntime

    async def scenario():
        runtime_dir = short_tmp("rk-ray-")
        manager = SandboxManager(runtime_dir=runtime_dir)
        runtime = RayPlacedRuntime(inner="process")
        manager.runtimes["process"] = runtime  # this manager's process sandboxes go through Ray
        try:
            info = await manager.create(SandboxSpec(cpus=1, memory="256m"))
            entry = manager.get(info.id)
            placement = entry.placement
            assert placement.extra["node_id"] == ray_cluster.get_runtime_context().get_node_id()
            # Ray accounts for the sandbox: one CPU is held while it lives
            assert ray_cluster.available_resources().get("CPU", 0) <= ray_cluster.cluster_resources()["CPU"] - 1
            result = await LocalSandboxAPI(manager).run(info.id, RunRequest(cmd="echo hello from $HOME", timeout=30))
            assert result.exit_code == 0 and result.output.strip().startswith("hello from")
            actor = ray_cluster.get_actor(placement.extra["actor"], namespace=NAMESPACE)
            await manager.delete(info.id)
            with pytest.raises(ValueError):
                for _ in range(100):  # ray.kill is asynchronous: wait until the name is released
                    ray_cluster.get_actor(placement.extra["actor"], namespace=NAMESPACE)
                    await asyncio.sleep(0.1)
            del actor
        finally:
            await manager.close()
            shutil.rmtree(runtime_dir, ignore_errors=True)

    asyncio.run(scenario())


def test_sandbox_config_placement_ray_goes_through_an_actor_on_a_node(ray_cluster, tmp_path):
    """The public way: `SandboxConfig(placement="ray")`; the manager builds the Ray-placed runtime."""
    from rock_envs.sandbox import SandboxConfig, SyncSandbox

    runtime_dir = short_tmp("rk-rayc-")
    try:
        config = SandboxConfig(placement="ray", cpus=1, memory="256m", runtime_dir=runtime_dir)
        total = ray_cluster.cluster_resources()["CPU"]

        def every_cpu_free() -> bool:
            return bool(ray_cluster.available_resources().get("CPU", 0) == total)

        assert settle(every_cpu_free, timeout=10)  # earlier actors gone
        with SyncSandbox(config) as sb:
            assert sb.run("echo placed").output.strip() == "placed"
            assert ray_cluster.available_resources().get("CPU", 0) == total - 1  # Ray holds its CPU
        # The actor's CPU comes back once the sandbox is gone.
        assert settle(every_cpu_free, timeout=10)
    finally:
        shutil.rmtree(runtime_dir, ignore_errors=True)
