"""The ray backend when nodes of a real cluster are lost or added mid-run.

Each test adds its own nodes to the session cluster (`ray_nodes`) and pins its workers to them
through a custom resource only those nodes have, so the shared head, node_a and node_b survive
every kill. A lost node is lost for real: its raylet SIGKILLed, its whole process group SIGKILLed,
or one of its Ray agents SIGKILLed (which takes its raylet with it). The step in flight returns:
the envs of the lost workers are rebuilt on a node that is left, re-seeded with their last seed,
truncated and flagged `worker_restarted`.
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
from collections.abc import Iterator

import numpy as np
import pytest

import rock_envs
from tests.support.envs import NORMAL, SLOW, ProbeEnv
from tests.support.ray_nodes import RayNode, RayNodes

pytestmark = pytest.mark.ray

POOL = "fault_pool"  # the custom resource of the nodes these tests add, and only theirs
NUM_ENVS, NUM_WORKERS = 8, 4
_names = (f"lost{n}" for n in itertools.count())


@pytest.fixture(scope="module")
def spare(ray_cluster, ray_nodes: RayNodes) -> Iterator[RayNode]:
    """A node that survives every test of this module: where lost workers are rebuilt."""
    node = ray_nodes.add_node("spare", num_cpus=2, resources={POOL: 100})
    yield node
    ray_nodes.remove(node)


@pytest.fixture
def doomed(ray_nodes: RayNodes, spare: RayNode) -> Iterator[RayNode]:
    """A node for one test to lose."""
    node = ray_nodes.add_node(next(_names), num_cpus=2, resources={POOL: 100})
    yield node
    if node in ray_nodes.nodes:
        ray_nodes.remove(node)


def _make_probes(resource: str = POOL, **options):
    return rock_envs.make_vec(
        functools.partial(ProbeEnv, delay=2.0),
        NUM_ENVS,
        backend="ray",
        num_workers=NUM_WORKERS,
        timeout=120,  # a hang guard: a failed rebuild raises long before
        worker_resources={"num_cpus": 0.25, "resources": {resource: 1}},
        **options,
    )


def _nodes_of(venv) -> list[str]:
    return [venv.group.describe(w)["node_id"] for w in range(venv.group.num_workers)]


def _lose_mid_step(venv, doomed: RayNode, spare: RayNode, lose) -> None:
    """Reset, start a slow step, lose `doomed` with `lose()`, wait for the step, and check that the
    envs of the lost workers came back on `spare`, re-seeded and flagged, and the others stepped."""
    venv.reset(seed=100)
    before, lost = _nodes_of(venv), doomed.node_id
    venv.step_async(np.full(NUM_ENVS, SLOW))  # every env asleep in its step for 2 s
    lose()
    obs, rewards, terms, truncs, infos = venv.step_wait()
    on_lost = np.repeat([node == lost for node in before], NUM_ENVS // NUM_WORKERS)
    assert on_lost.any() and not on_lost.all(), before  # SPREAD over two nodes: both got workers
    flagged = infos["worker_restarted"] & infos["_worker_restarted"]
    assert flagged.tolist() == on_lost.tolist()
    assert truncs.tolist() == on_lost.tolist()
    assert rewards.tolist() == np.where(on_lost, 0.0, 1.0).tolist()
    seeds = 100 + np.arange(NUM_ENVS)
    assert obs[on_lost, 0].tolist() == [0] * on_lost.sum()  # a fresh episode: no steps yet,
    assert obs[on_lost, 1].tolist() == seeds[on_lost].tolist()  # re-seeded with its last seed
    assert obs[~on_lost, 0].tolist() == [1] * (~on_lost).sum()  # the others stepped once
    after = _nodes_of(venv)
    assert lost not in after and set(after) == {spare.node_id} | (set(before) - {lost})
    obs, rewards, *_ = venv.step(np.full(NUM_ENVS, NORMAL))  # and it goes on
    assert rewards.tolist() == [1.0] * NUM_ENVS


def test_raylet_killed_mid_step(ray_nodes, spare, doomed):
    with _make_probes() as venv:
        _lose_mid_step(venv, doomed, spare, lambda: os.kill(doomed.raylet_pid(), signal.SIGKILL))


def test_node_process_group_killed_mid_step(ray_nodes, spare, doomed):
    with _make_probes() as venv:
        _lose_mid_step(venv, doomed, spare, lambda: ray_nodes.kill(doomed))


@pytest.mark.parametrize("agent", ["DashboardAgent", "RuntimeEnvAgent"])
def test_ray_agent_killed_mid_step(ray_nodes, spare, doomed, agent):
    """Ray ends a raylet whose agent died; its worker processes live on as orphans that would keep
    answering on their channels: they end with their raylet, so the step returns rebuilt."""
    with _make_probes() as venv:
        _lose_mid_step(venv, doomed, spare, lambda: os.kill(doomed.agent_pid(agent), signal.SIGKILL))


def test_workers_land_on_a_node_added_while_running(ray_nodes, spare):
    """A restart after a loss, and a new make_vec, may use a node that joined after the vector env
    was made: here the only node left with the resource the workers ask for."""
    first = ray_nodes.add_node(next(_names), num_cpus=2, resources={"late_pool": 100})
    with _make_probes(resource="late_pool") as venv:
        venv.reset(seed=100)
        assert set(_nodes_of(venv)) == {first.node_id}
        added = ray_nodes.add_node(next(_names), num_cpus=2, resources={"late_pool": 100})
        try:
            ray_nodes.remove(first)
            obs, rewards, terms, truncs, infos = venv.step(np.full(NUM_ENVS, NORMAL))
            assert infos["worker_restarted"].all() and truncs.all()
            assert obs[:, 1].tolist() == (100 + np.arange(NUM_ENVS)).tolist()
            assert set(_nodes_of(venv)) == {added.node_id}
            with rock_envs.make_vec(
                "CartPole-v1", 2, backend="ray", num_workers=1, worker_resources={"resources": {added.name: 1}}
            ) as other:
                other.reset(seed=0)
                assert _nodes_of(other) == [added.node_id]
        finally:
            ray_nodes.remove(added)
