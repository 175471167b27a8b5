"""Env frames through data replicas, and a replica SIGKILLed: its sandboxes' calls and workers move to
the others; nothing is lost but what was in flight on it."""

from __future__ import annotations

import signal
from typing import Iterator

import numpy as np
import pytest

import rock_envs
from rock_envs.sandbox import Sandbox, SandboxConfig
from tests.sandbox.cluster.conftest import Cluster, start_cluster
from tests.sandbox.server.test_metrics import scrape, value
from tests.support.redis import RedisProcess


@pytest.fixture
def small_cluster(redis_server: RedisProcess) -> Iterator[Cluster]:
    """A control plane and two replicas of its own: these tests kill replicas."""
    started = start_cluster(redis_server, 2)
    yield started
    started.stop()


def relayed_by_control(cluster: Cluster) -> float:
    return value(scrape(cluster.control), "rock_envs_relay_frames_total", direction="to_worker")


def test_remote_envs_step_through_the_replicas_as_on_one_server(cluster: Cluster) -> None:
    kwargs = {"url": cluster.control.url, "token": cluster.control.token, "num_workers": 3}
    venv = rock_envs.make_vec("CartPole-v1", 6, backend="remote", data_urls=cluster.data_urls, **kwargs)
    single = rock_envs.make_vec("CartPole-v1", 6, backend="local")
    try:
        obs, _ = venv.reset(seed=7)
        expected, _ = single.reset(seed=7)
        np.testing.assert_allclose(obs, expected)
        for step in range(20):
            actions = np.array([(step + i) % 2 for i in range(6)])
            obs, rewards, terms, truncs, _ = venv.step(actions)
            expected, exp_rewards, exp_terms, _, _ = single.step(actions)
            np.testing.assert_allclose(obs, expected)
            assert rewards.tolist() == exp_rewards.tolist() and terms.tolist() == exp_terms.tolist()
        group = venv.group
        for w, sid in enumerate(group.sandbox_ids()):  # each worker through its sandbox's own replica
            assert group._channels[w].mux is group._muxes[group._replicas.order(cluster.data_urls, sid)[0]]
        assert relayed_by_control(cluster) == 0  # no frame went through the control plane
    finally:
        venv.close()
        single.close()
    assert cluster.control.sandboxes() == []


@pytest.mark.anyio
async def test_a_replica_killed_moves_its_sandboxes_calls_to_the_others(small_cluster: Cluster) -> None:
    control, replicas = small_cluster.control, small_cluster.replicas
    config = SandboxConfig(base_url=control.url, data_urls=small_cluster.data_urls, token=control.token)
    async with Sandbox(config) as box:
        await box.create_session("s")
        await box.arun("export KEPT=yes", session="s")
        home = box._api.replica_for(box.id)  # type: ignore[union-attr]
        victim = next(r for r in replicas if r.url == home)
        victim.stop(signal.SIGKILL)
        result = await box.arun("echo $KEPT", session="s")  # the session lives in the agent: still there
        assert result.output == "yes\n"
        assert box._api.replica_for(box.id) != home  # type: ignore[union-attr]
        assert (await box.status()).status == "running"
        victim.start()  # back on its port: it serves again once its skip time is over
        assert (await box.arun("echo back")).output == "back\n"


def test_a_replica_killed_mid_run_rebuilds_its_workers_through_the_other(small_cluster: Cluster) -> None:
    control = small_cluster.control
    venv = rock_envs.make_vec(
        "CartPole-v1",
        4,
        backend="remote",
        url=control.url,
        token=control.token,
        data_urls=small_cluster.data_urls,
        num_workers=4,
    )
    try:
        venv.reset(seed=0)
        sids = venv.group.sandbox_ids()
        victim = next(
            r
            for r in small_cluster.replicas
            if r.url == venv.group._replicas.order([r.url for r in small_cluster.replicas], sids[0])[0]
        )
        moved = len(venv.group._muxes[victim.url].channels)  # worker 0's and any other on that replica
        victim.stop(signal.SIGKILL)
        restarted = np.zeros(4, dtype=bool)
        for _ in range(5):
            _, _, _, truncs, infos = venv.step(np.zeros(4, dtype=int))
            restarted |= infos.get("_worker_restarted", np.zeros(4, dtype=bool))
        assert int(restarted.sum()) == moved  # the killed replica's workers, and only those
        assert venv.group.sandbox_ids() == sids  # reopened in the same sandboxes, through the survivor
        assert list(venv.group._muxes[victim.url].channels) == []
        survivor = next(r for r in small_cluster.replicas if r is not victim)
        assert len(venv.group._muxes[survivor.url].channels) == 4
    finally:
        venv.close()
    assert control.sandboxes() == []
