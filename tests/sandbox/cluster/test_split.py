"""Sandboxes made on the control plane, used through every data replica, with no call of theirs on
the control plane; deleted there, gone everywhere; lifecycle calls on a replica name the control plane."""

from __future__ import annotations

import time

import pytest
import redis as redis_client

from rock_envs.sandbox import Sandbox, SandboxConfig
from rock_envs.sandbox import models as m
from rock_envs.sandbox.errors import InvalidRequestError, SandboxNotFoundError
from rock_envs.sandbox.sdk.http import HttpSandboxAPI
from tests.sandbox.cluster.conftest import Cluster
from tests.sandbox.server.test_metrics import scrape, value
from tests.support.processes import settle

pytestmark = pytest.mark.anyio
EXEC = "/sandboxes/{sid}/commands"


def replica_apis(cluster: Cluster) -> list[HttpSandboxAPI]:
    return [HttpSandboxAPI.connect(url, cluster.control.token) for url in cluster.data_urls]


def control_execs(cluster: Cluster) -> float:
    return value(scrape(cluster.control), "rock_envs_http_request_seconds_count", route=EXEC, method="POST")


async def test_every_operation_on_one_sandbox_works_through_each_replica(cluster: Cluster) -> None:
    control = HttpSandboxAPI.connect(cluster.control.url, cluster.control.token)
    replicas = replica_apis(cluster)
    execs = control_execs(cluster)
    sid = (await control.create(m.SandboxSpec(ttl=120))).id
    try:
        first = replicas[0]
        await first.create_session(sid, m.SessionRequest(session="s"))
        await first.run(sid, m.RunRequest(cmd="cd /tmp && export LEVEL=1", session="s"))
        for i, api in enumerate(replicas):  # the agent's state is one, whichever replica reaches it
            assert (await api.info(sid)).status == "running"
            result = await api.run(sid, m.RunRequest(cmd="echo $LEVEL $(pwd); export LEVEL=$((LEVEL+1))", session="s"))
            assert result.output.split() == [str(i + 1), "/tmp"], result
            await api.write_file(sid, m.UploadRequest(path=f"from-{i}.txt"), f"replica {i}".encode())
            job = await api.start_job(sid, m.JobRequest(cmd=f"echo job-{i}; exit {i}"))
            done = await api.wait_job(sid, m.WaitJobRequest(job_id=job.job_id, timeout=30))
            assert done.exit_code == i
            logs = await api.job_logs(sid, m.JobLogsRequest(job_id=job.job_id))
            assert logs.data == f"job-{i}\n"
        names = {e.name for e in (await replicas[2].list_files(sid, m.FileQuery(path="."))).entries}
        assert {"from-0.txt", "from-1.txt", "from-2.txt"} <= names
        data = b"".join([c async for c in await replicas[1].download(sid, m.DownloadRequest(path="from-2.txt"))])
        assert data == b"replica 2"
        events = [e async for e in await replicas[2].run_stream(sid, m.RunRequest(cmd="echo streamed"))]
        assert events[-1]["type"] == "result" and events[-1]["output"] == "streamed\n"
        assert len((await replicas[0].list_jobs(sid)).jobs) == 3
        await replicas[1].close_session(sid, m.SessionRef(session="s"))
        assert control_execs(cluster) == execs  # no exec reached the control plane
    finally:
        await control.delete(sid)
        for api in [control, *replicas]:
            await api.aclose()


async def test_a_sandbox_deleted_on_the_control_plane_is_gone_on_every_replica(cluster: Cluster) -> None:
    control = HttpSandboxAPI.connect(cluster.control.url, cluster.control.token)
    replicas = replica_apis(cluster)
    try:
        sid = (await control.create(m.SandboxSpec())).id
        for api in replicas:  # each replica has it cached and an agent connection open
            assert (await api.run(sid, m.RunRequest(cmd="true"))).exit_code == 0
        await control.delete(sid)
        for api in replicas:
            with pytest.raises(SandboxNotFoundError, match=f"no sandbox '{sid}' on the control plane"):
                await api.run(sid, m.RunRequest(cmd="true"))
            with pytest.raises(SandboxNotFoundError, match="stopped, reaped after its TTL, or never existed"):
                await api.info(sid)
    finally:
        for api in [control, *replicas]:
            await api.aclose()


async def test_lifecycle_calls_on_a_replica_name_the_control_plane(cluster: Cluster) -> None:
    (api, *rest) = replica_apis(cluster)
    try:
        for call in (api.create(m.SandboxSpec()), api.delete("sb-x"), api.list_pools(), api.stats()):
            with pytest.raises(InvalidRequestError, match=f"data replica .* control plane at {cluster.control.url}"):
                await call
    finally:
        for each in [api, *rest]:
            await each.aclose()


async def test_the_sdk_spreads_sandboxes_over_the_replicas_and_never_execs_on_the_control_plane(
    cluster: Cluster,
) -> None:
    config = SandboxConfig(base_url=cluster.control.url, data_urls=cluster.data_urls, token=cluster.control.token)
    execs = control_execs(cluster)
    boxes: list[Sandbox] = []
    try:
        while len({box._api.replica_for(box.id) for box in boxes}) < 2 and len(boxes) < 30:  # type: ignore[union-attr]
            boxes.append(await Sandbox(config).start())  # ids are random: the hash spreads them
        assert len({box._api.replica_for(box.id) for box in boxes}) == 2  # type: ignore[union-attr]
        for box in boxes:
            assert (await box.arun(f"echo {box.id}")).output == f"{box.id}\n"
            assert (await box.status()).status == "running"
        assert control_execs(cluster) == execs
    finally:
        for box in boxes:
            await box.stop()
    store = redis_client.Redis.from_url(cluster.redis.url)
    try:  # nothing left in the store of this cluster
        assert store.hlen(f"{cluster.namespace}:sandboxes") == 0
    finally:
        store.close()


async def test_a_sandbox_busy_only_through_a_replica_is_not_reaped_for_idleness(cluster: Cluster) -> None:
    control = HttpSandboxAPI.connect(cluster.control.url, cluster.control.token)
    (api, *rest) = replica_apis(cluster)
    try:
        sid = (await control.create(m.SandboxSpec(ttl=3))).id
        for _ in range(6):  # 6 s of use (twice the TTL), none of it seen by the control plane itself
            assert (await api.run(sid, m.RunRequest(cmd="sleep 1"))).exit_code == 0
        assert (await control.info(sid)).status == "running"
        began = time.monotonic()
        assert settle(lambda: sid not in cluster.control.sandboxes(), timeout=30)  # idle now: reaped
        assert time.monotonic() - began >= 1.0
        with pytest.raises(SandboxNotFoundError):
            await api.run(sid, m.RunRequest(cmd="true"))
    finally:
        for each in [control, api, *rest]:
            await each.aclose()
