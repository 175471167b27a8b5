"""Sandboxes on a non-head node of the suite's Ray cluster, reached only through their node's relay.

Proof the relay is the path: the agent's address is ``tcp://``, its socket lives in the node's own
directory (never under the manager's runtime dir), and the relay's connection counts grow with each
kind of call. Faults: a node added for the test and then lost takes its sandbox with it; the next
call names the node, and the manager removes the sandbox with nothing left running.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import sys
from typing import Any, Awaitable, Callable

import cloudpickle
import pytest

from rock_envs.sandbox import Sandbox, SandboxConfig, SandboxDiedError
from rock_envs.sandbox.errors import AuthenticationError, SandboxStartError
from rock_envs.sandbox.local import LocalSandboxAPI
from rock_envs.sandbox.runtime.ray import NAMESPACE
from rock_envs.worker.protocol import Batch, Built, Make, Reset, Step, decode, encode
from tests.sandbox.model_service.agents import run_with_answers
from tests.support.paths import short_tmp
from tests.support.processes import settle
from tests.support.ray_nodes import RayNode
from tests.support.server import ServerProcess

pytestmark = pytest.mark.ray
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the sandbox cannot import this test file

MODEL_CLIENT = """
import json, urllib.request, os
body = json.dumps({"model": "policy", "messages": [{"role": "user", "content": "hi"}]}).encode()
req = urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/chat/completions", body,
                             {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
                              "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req, timeout=60))["choices"][0]["message"]["content"])
"""


def cartpole(env_id: int) -> object:
    import rock_envs

    return rock_envs.make("CartPole-v1")


def relay_counts(ray: Any, sandbox_id: str) -> dict[str, int]:
    host = ray.get_actor(f"rock-envs-{sandbox_id}", namespace=NAMESPACE)
    return dict(ray.get(host.relay_counts.remote(), timeout=30))


def sandbox_hosts(ray: Any) -> list[str]:
    """The names of the SandboxHost actors alive in the cluster."""
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]


def actor_gone(ray: Any, sandbox_id: str) -> bool:
    try:
        ray.get_actor(f"rock-envs-{sandbox_id}", namespace=NAMESPACE)
    except ValueError:
        return True
    return False


async def every_operation(sb: Sandbox, ray: Any, tmp: str) -> None:
    """Sessions, exec, files both ways, jobs, an env worker and a model call, each through the relay."""
    before = relay_counts(ray, sb.id)
    await sb.create_session("s")
    await sb.arun("export GREETING=relayed", session="s")
    assert (await sb.arun("echo $GREETING", session="s")).output.strip() == "relayed"
    result = await sb.arun("echo out; echo err >&2; exit 3", timeout=30)
    assert (result.output.strip(), result.stderr.strip(), result.exit_code) == ("out", "err", 3)
    payload = os.urandom(3 * 1024 * 1024 + 17)  # several chunks each way
    with open(os.path.join(tmp, "up.bin"), "wb") as fh:
        fh.write(payload)
    assert (await sb.upload(os.path.join(tmp, "up.bin"), "data/up.bin")).size == len(payload)
    await sb.download("data/up.bin", os.path.join(tmp, "down.bin"))
    with open(os.path.join(tmp, "down.bin"), "rb") as fh:
        assert fh.read() == payload
    job = await sb.run_job("echo job-done")
    assert (await sb.wait_job(job.job_id, timeout=60)).exit_code == 0
    assert (await sb.job_logs(job.job_id)).data.strip() == "job-done"
    async with await sb.open_worker() as worker:
        built = decode(await worker.request(encode(Make([0, 1], cloudpickle.dumps(cartpole))), timeout=120))
        assert isinstance(built, Built)
        reset = decode(await worker.request(encode(Reset([0, 1], [7, 7], [None, None]))))
        assert isinstance(reset, Batch) and (reset.obs[0] == reset.obs[1]).all()  # same seed, same start
        for _ in range(3):
            await worker.send(encode(Step([0, 1], [0, 1])))
        replies = [decode(await worker.recv()) for _ in range(3)]
        assert all(isinstance(r, Batch) and r.env_ids == [0, 1] for r in replies)

    async def answer(call: Any) -> None:
        await call.respond("from the trainer")

    await sb.write_file("model.py", MODEL_CLIENT)
    model = await run_with_answers(sb, "python3 model.py", answer)  # the sandbox's Python: stdlib only
    assert model.exit_code == 0, model.stderr
    assert model.output.strip() == "from the trainer"
    after = relay_counts(ray, sb.id)
    assert after.get("worker", 0) - before.get("worker", 0) == 1  # the env worker had a pipe of its own
    assert after.get("agent", 0) > before.get("agent", 0)
    assert after.get("refused", 0) == 0


def run_embedded(scenario: Callable[[LocalSandboxAPI, str, str], Awaitable[None]]) -> None:
    """``scenario(api, runtime_dir, tmp)`` on a fresh embedded manager; both dirs removed after."""
    runtime_dir, tmp = short_tmp("rk-rel-"), short_tmp("rk-relf-")

    async def main() -> None:
        api = LocalSandboxAPI.shared(runtime_dir)
        try:
            await scenario(api, runtime_dir, tmp)
        finally:
            await api.aclose()

    try:
        asyncio.run(main())
    finally:
        shutil.rmtree(runtime_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


async def placed_and_relayed(
    api: LocalSandboxAPI, ray: Any, config: SandboxConfig, node: RayNode, tmp: str
) -> tuple[str, int]:
    """A sandbox of ``config`` lands on ``node``, is reached over TCP only, and does everything;
    returns its id and its agent's pid (gone once the sandbox stopped)."""
    async with Sandbox(config) as sb:
        entry = api.manager.get(sb.id)
        assert entry.placement is not None
        assert entry.placement.extra["node_id"] == node.node_id
        assert entry.placement.socket.startswith("tcp://127.0.0.1:")
        # the agent's socket is on the node's side, where the manager never looks
        assert glob.glob(os.path.join(str(config.runtime_dir), "**", "agent.sock"), recursive=True) == []
        assert os.path.exists(os.path.join(entry.placement.extra["base"], "agent.sock"))
        await every_operation(sb, ray, tmp)
        base = entry.placement.extra["base"]
        agent_pid = int(entry.placement.extra["inner"].get("pid") or 0)
    assert await asyncio.to_thread(settle, lambda: not os.path.exists(base), 30)  # the node's dir went too
    return sb.id, agent_pid


def test_every_operation_goes_through_the_relay_of_a_sandbox_on_node_a(ray_cluster, ray_nodes):
    async def scenario(api: LocalSandboxAPI, runtime_dir: str, tmp: str) -> None:
        config = SandboxConfig(
            placement="ray", resources={"node_a": 0.01}, model_service="trainer", runtime_dir=runtime_dir
        )
        sid, agent_pid = await placed_and_relayed(api, ray_cluster, config, ray_nodes.node("node_a"), tmp)
        # stopped: the lifeline through the relay closed, the agent exited, the actor ended
        assert await asyncio.to_thread(settle, lambda: not os.path.exists(f"/proc/{agent_pid}"), 30)
        assert await asyncio.to_thread(settle, lambda: actor_gone(ray_cluster, sid), 30)

    run_embedded(scenario)


def test_a_wrong_secret_is_refused_by_the_relay(ray_cluster):
    from rock_envs.sandbox.agent_client import AgentClient

    async def scenario(api: LocalSandboxAPI, runtime_dir: str, tmp: str) -> None:
        config = SandboxConfig(placement="ray", resources={"node_b": 0.01}, runtime_dir=runtime_dir)
        async with Sandbox(config) as sb:
            placement = api.manager.get(sb.id).placement
            assert placement is not None
            intruder = AgentClient(placement.socket, sb.id, secret="not-the-secret")
            with pytest.raises(AuthenticationError, match="wrong or missing secret"):
                await intruder.call({"op": "ping"}, timeout=30)
            with pytest.raises(AuthenticationError, match="wrong or missing secret"):
                await intruder.open_worker(["{python}", "-c", "pass"], None)
            await intruder.close()
            assert relay_counts(ray_cluster, sb.id)["refused"] == 2
            assert (await sb.arun("echo still-fine")).output.strip() == "still-fine"

    run_embedded(scenario)


def test_resources_no_node_has_fail_the_start_within_its_timeout(ray_cluster):
    async def scenario(api: LocalSandboxAPI, runtime_dir: str, tmp: str) -> None:
        config = SandboxConfig(
            placement="ray", resources={"no_such_node": 1}, runtime_dir=runtime_dir, startup_timeout=3
        )
        with pytest.raises(SandboxStartError, match="no node took the sandbox within 3.0 s.*no_such_node"):
            await Sandbox(config).start()

    run_embedded(scenario)
    with pytest.raises(ValueError, match="need placement='ray'"):
        SandboxConfig(resources={"node_a": 0.01})


@pytest.mark.docker
def test_a_docker_sandbox_on_node_b_is_reached_through_its_relay(ray_cluster, ray_nodes, image):
    async def scenario(api: LocalSandboxAPI, runtime_dir: str, tmp: str) -> None:
        config = SandboxConfig(
            runtime="docker",
            image=image,
            placement="ray",
            resources={"node_b": 0.01},
            model_service="trainer",
            runtime_dir=runtime_dir,
        )
        await placed_and_relayed(api, ray_cluster, config, ray_nodes.node("node_b"), tmp)

    run_embedded(scenario)


def test_through_a_real_server_a_sandbox_on_node_b_and_remote_env_steps(ray_cluster, ray_nodes, monkeypatch):
    """`rock-envs serve` as a Ray driver (RAY_ADDRESS): SDK calls, and make_vec(backend='remote')
    whose frames go server -> relay on node_b -> worker, giving the same trajectories as locally."""
    import numpy as np

    import rock_envs
    from rock_envs.sandbox import SyncSandbox

    monkeypatch.setenv("RAY_ADDRESS", ray_nodes.address)
    srv = ServerProcess().start()
    tmp = short_tmp("rk-relsv-")
    try:
        config = SandboxConfig(base_url=srv.url, token=srv.token, placement="ray", resources={"node_b": 0.01})
        with SyncSandbox(config) as sb:
            assert sb.run("echo via-server").output.strip() == "via-server"
            sb.write_file("note.txt", "relayed bytes")
            assert sb.read_file("note.txt") == "relayed bytes"
            counts = relay_counts(ray_cluster, sb.id)
            assert counts["agent"] >= 2 and counts.get("refused", 0) == 0
            sid = sb.id
        assert settle(lambda: actor_gone(ray_cluster, sid), timeout=30)

        options = {"url": srv.url, "token": srv.token, "num_workers": 1}
        far = rock_envs.make_vec(
            "CartPole-v1",
            num_envs=2,
            backend="remote",
            sandbox_placement="ray",
            sandbox_resources={"node_b": 0.01},
            **options,
        )
        near = rock_envs.make_vec("CartPole-v1", num_envs=2, backend="local")
        try:
            far_obs, _ = far.reset(seed=3)
            near_obs, _ = near.reset(seed=3)
            assert np.array_equal(far_obs, near_obs)
            for _ in range(20):
                actions = np.array([0, 1])
                assert np.array_equal(far.step(actions)[0], near.step(actions)[0])
            (sid,) = srv.sandboxes()
            assert relay_counts(ray_cluster, sid)["worker"] == 1
        finally:
            far.close()
            near.close()
    finally:
        srv.stop()
        shutil.rmtree(srv.runtime_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_lost_node_takes_its_sandbox_with_a_clear_error_and_the_manager_forgets_it(ray_cluster, ray_nodes):
    node = ray_nodes.add_node("node_lost", num_cpus=1)
    node_id = node.node_id
    lost_disk: list[str] = []

    async def scenario(api: LocalSandboxAPI, runtime_dir: str, tmp: str) -> None:
        sb = await Sandbox(
            SandboxConfig(placement="ray", resources={"node_lost": 0.01}, runtime_dir=runtime_dir)
        ).start()
        entry = api.manager.get(sb.id)
        assert entry.placement is not None
        agent_pid = int(entry.placement.extra["inner"]["pid"])
        assert entry.placement.extra["node_id"] == node_id
        lost_disk.append(entry.placement.extra["base"])  # on a real cluster it goes with the machine
        worker = await sb.open_worker()
        decode(await worker.request(encode(Make([0], cloudpickle.dumps(cartpole))), timeout=120))
        ray_nodes.kill(node)
        with pytest.raises(SandboxDiedError, match=f"on Ray node {node_id}"):
            await asyncio.wait_for(sb.arun("echo never", timeout=10), 60)
        api.manager.dead_retention = 1.0  # from here on a dead sandbox is removed at the reaper's next look
        with pytest.raises(SandboxDiedError):  # the worker's pipe went with the node
            await worker.request(encode(Reset([0], [0], [None])), timeout=30)
        await worker.aclose()
        # the manager forgets it, and nothing of it is left running
        assert await asyncio.to_thread(settle, lambda: sb.id not in api.manager.sandboxes, 30)
        assert await asyncio.to_thread(settle, lambda: not os.path.exists(f"/proc/{agent_pid}"), 30)
        assert await asyncio.to_thread(settle, lambda: actor_gone(ray_cluster, sb.id), 60)
        await sb.stop()  # stopping a sandbox already gone is quiet
        # the other nodes go on: a sandbox still lands on node_a
        async with Sandbox(SandboxConfig(placement="ray", resources={"node_a": 0.01}, runtime_dir=runtime_dir)) as sb:
            assert (await sb.arun("echo alive")).output.strip() == "alive"

    try:
        run_embedded(scenario)
    finally:  # a lost node is no longer one of the cluster's (other tests walk `ray_nodes.nodes`)
        ray_nodes.kill(node)
        ray_nodes.nodes.remove(node)
        for path in lost_disk:
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)

        def marked_dead() -> bool:  # so later tests' actors are never scheduled onto it
            return not any(n["Alive"] for n in ray_cluster.nodes() if n["NodeID"] == node_id)

        assert settle(marked_dead, timeout=120, interval=0.5)


def test_the_relay_lost_on_a_live_node_ends_its_sandbox_with_a_clear_error(ray_cluster, ray_nodes):
    """The SandboxHost actor (the relay) killed, its node alive: the lifeline through it closed, so
    the agent exits; the next call names the node; nothing is left."""

    async def scenario(api: LocalSandboxAPI, runtime_dir: str, tmp: str) -> None:
        sb = await Sandbox(SandboxConfig(placement="ray", resources={"node_b": 0.01}, runtime_dir=runtime_dir)).start()
        entry = api.manager.get(sb.id)
        assert entry.placement is not None
        agent_pid = int(entry.placement.extra["inner"]["pid"])
        ray_cluster.kill(ray_cluster.get_actor(f"rock-envs-{sb.id}", namespace=NAMESPACE), no_restart=True)
        assert await asyncio.to_thread(settle, lambda: not os.path.exists(f"/proc/{agent_pid}"), 30)
        with pytest.raises(SandboxDiedError, match=f"on Ray node {ray_nodes.node('node_b').node_id}"):
            await asyncio.wait_for(sb.arun("echo never", timeout=10), 60)
        api.manager.dead_retention = 1.0  # from here on a dead sandbox is removed at the reaper's next look
        assert await asyncio.to_thread(settle, lambda: sb.id not in api.manager.sandboxes, 30)
        # the node is alive: the directory its lost actor left is removed there
        assert await asyncio.to_thread(settle, lambda: not os.path.exists(entry.placement.extra["base"]), 60)
        await sb.stop()

    run_embedded(scenario)


@pytest.mark.docker
def test_docker_backend_workers_in_containers_on_node_a_step_through_the_relay(ray_cluster, ray_nodes, image):
    """make_vec(backend='docker', sandbox_placement='ray'): this process's poll loop talks to each
    worker over a TCP byte pipe to its node; trajectories equal the local backend's."""
    import numpy as np

    import rock_envs
    from rock_envs.core.errors import EnvArgumentError

    place = {"sandbox_placement": "ray", "sandbox_resources": {"node_a": 0.01}}
    far = rock_envs.make_vec("CartPole-v1", num_envs=2, backend="docker", image=image, num_workers=1, **place)
    near = rock_envs.make_vec("CartPole-v1", num_envs=2, backend="local")
    try:
        assert np.array_equal(far.reset(seed=5)[0], near.reset(seed=5)[0])
        for _ in range(20):
            actions = np.array([1, 0])
            assert np.array_equal(far.step(actions)[0], near.step(actions)[0])
        (sid,) = [name[len("rock-envs-") :] for name in sandbox_hosts(ray_cluster)]
        assert relay_counts(ray_cluster, sid)["worker"] == 1
    finally:
        far.close()
        near.close()
    assert settle(lambda: not sandbox_hosts(ray_cluster), timeout=30)
    with pytest.raises(EnvArgumentError, match="drop `docker_client`"):
        rock_envs.make_vec("CartPole-v1", 2, backend="docker", docker_client=object(), **place)
