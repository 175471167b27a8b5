"""The two scale-outs together: a control plane that places sandboxes on Ray nodes, and a data
replica that reaches them through their nodes' relays (the address and secret it reads from Redis)."""

from __future__ import annotations

import pytest

from rock_envs.sandbox import SandboxConfig, SyncSandbox
from tests.sandbox.cluster.conftest import start_cluster
from tests.sandbox.cluster.test_split import control_execs
from tests.sandbox.runtime.test_ray_relay import actor_gone, relay_counts
from tests.support.processes import settle

pytestmark = pytest.mark.ray


def test_a_replica_reaches_a_sandbox_on_another_node_through_its_relay(
    ray_cluster, ray_nodes, redis_server, monkeypatch
):
    monkeypatch.setenv("RAY_ADDRESS", ray_nodes.address)  # the control plane joins the cluster as a driver
    cluster = start_cluster(redis_server, 1)
    try:
        (replica,) = cluster.replicas
        config = SandboxConfig(
            base_url=cluster.control.url,
            token=cluster.control.token,
            data_urls=[replica.url],
            placement="ray",
            resources={"node_a": 0.01},
        )
        with SyncSandbox(config) as sb:
            before = relay_counts(ray_cluster, sb.id)
            sb.create_session("s")
            sb.run("export WHERE=far", session="s")
            assert sb.run("echo $WHERE", session="s").output.strip() == "far"
            sb.write_file("note.txt", "through the replica and the relay")
            assert sb.read_file("note.txt") == "through the replica and the relay"
            after = relay_counts(ray_cluster, sb.id)
            assert control_execs(cluster) == 0  # every exec went replica -> relay -> agent
            assert after["agent"] > before["agent"] and after.get("refused", 0) == 0
            sid = sb.id
        assert settle(lambda: actor_gone(ray_cluster, sid), timeout=30)
    finally:
        cluster.stop()
