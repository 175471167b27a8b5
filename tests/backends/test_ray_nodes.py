"""The ray backend on a real cluster of three nodes (`ray_nodes`): where the worker actors land."""

from __future__ import annotations

import numpy as np
import pytest

import rock_envs

pytestmark = pytest.mark.ray


def _nodes_of(venv) -> list[str]:
    return [venv.group.describe(w)["node_id"] for w in range(venv.group.num_workers)]


def test_spread_places_workers_on_every_node(ray_cluster, ray_nodes):
    with rock_envs.make_vec("CartPole-v1", 6, backend="ray", num_workers=6, worker_resources={"num_cpus": 0.5}) as venv:
        venv.reset(seed=0)
        venv.step(np.zeros(6, dtype=np.int64))
        landed = _nodes_of(venv)
    assert set(landed) <= {n.node_id for n in ray_nodes.nodes}
    assert len(set(landed)) == 3, landed  # SPREAD over three nodes with room: each node gets some


def test_strict_spread_gives_each_worker_its_own_node(ray_cluster, ray_nodes):
    with rock_envs.make_vec(
        "CartPole-v1", 3, backend="ray", num_workers=3, placement="strict_spread", worker_resources={"num_cpus": 0.5}
    ) as venv:
        venv.reset(seed=0)
        assert sorted(_nodes_of(venv)) == sorted(n.node_id for n in ray_nodes.nodes)


def test_custom_resource_pins_workers_to_one_node(ray_cluster, ray_nodes):
    with rock_envs.make_vec(
        "CartPole-v1",
        4,
        backend="ray",
        num_workers=2,
        worker_resources={"num_cpus": 0.5, "resources": {"node_b": 0.1}},
    ) as venv:
        venv.reset(seed=0)
        assert _nodes_of(venv) == [ray_nodes.node("node_b").node_id] * 2
