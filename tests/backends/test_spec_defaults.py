"""An `EnvSpec`'s `cpus` and `memory` are the limits of each remote worker's sandbox unless the call
says otherwise; its `backend` is where `make_vec` and `make` run it when the call names none."""

from __future__ import annotations

import httpx

import rock_envs
from tests.support.server import ServerProcess


def _specs(srv: ServerProcess) -> list[dict]:
    response = httpx.get(srv.url + "/sandboxes", headers=srv.headers, timeout=30)
    response.raise_for_status()
    return [s["spec"] for s in response.json()["sandboxes"]]


def test_the_specs_cpus_and_memory_limit_each_sandbox_and_the_call_overrides_them(remote_server):
    rock_envs.register(
        "test:LimitedCartPole-v0",
        entry_point="gymnasium.envs.classic_control:CartPoleEnv",
        cpus=0.5,
        memory="300m",
        backend="remote",
    )
    with rock_envs.make_vec(
        "test:LimitedCartPole-v0", 2, url=remote_server.url, token=remote_server.token, num_workers=1
    ) as venv:
        assert venv.group.name == "remote"  # the spec's backend: the call named none
        venv.reset(seed=0)
        [spec] = _specs(remote_server)
        assert (spec["cpus"], spec["memory"]) == (0.5, "300m")
    with rock_envs.make_vec(
        "test:LimitedCartPole-v0", 1, backend="remote", url=remote_server.url, token=remote_server.token, memory="400m"
    ) as venv:
        venv.reset(seed=0)
        [spec] = _specs(remote_server)
        assert (spec["cpus"], spec["memory"]) == (0.5, "400m")


def test_make_runs_on_the_specs_backend(remote_server):
    rock_envs.register(
        "test:RemoteCartPole-v0",
        entry_point="gymnasium.envs.classic_control:CartPoleEnv",
        backend="remote",
        memory="300m",
    )
    with rock_envs.make("test:RemoteCartPole-v0", url=remote_server.url, token=remote_server.token) as env:
        env.reset(seed=1)
        assert [s["memory"] for s in _specs(remote_server)] == ["300m"]
    assert _specs(remote_server) == []


def test_a_spec_without_a_backend_runs_make_vec_on_subprocess_and_make_locally():
    rock_envs.register("test:PlainCartPole-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv")
    assert rock_envs.spec("test:PlainCartPole-v0").backend is None
    with rock_envs.make_vec("test:PlainCartPole-v0", 2, num_workers=1) as venv:
        assert venv.group.name == "subprocess"
    with rock_envs.make("test:PlainCartPole-v0") as env:
        assert env.unwrapped.__class__.__name__ == "CartPoleEnv"  # in this process
