"""The vector suite runs once per backend. A later backend joins by adding itself to `BACKENDS`.

Each entry names the backend, the extra `make_vec` keywords it needs, its pytest marks, and whether
its workers are processes on this machine (the tests that send real signals need that).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import cloudpickle
import pytest
import vector_helpers
from vector_helpers import ProbeEnv

import rock_envs

cloudpickle.register_pickle_by_value(vector_helpers)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docker"))
import docker_support  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "remote"))
from remote_support import RemoteServer  # noqa: E402


@dataclass(frozen=True)
class Backend:
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    marks: tuple[Any, ...] = ()
    local_processes: bool = False  # workers are processes on this machine with real pids


BACKENDS = [
    Backend("local", {"num_workers": 2}),
    Backend("subprocess", {"num_workers": 2}, local_processes=True),
    Backend("docker", {"num_workers": 2}, marks=(pytest.mark.docker,)),  # image: set by the fixture
    Backend("ray", {"num_workers": 2}, marks=(pytest.mark.ray,)),  # on the session's local Ray cluster
    Backend("remote", {"num_workers": 2}),  # url and token: the session's server process on 127.0.0.1
]


@pytest.fixture(params=[pytest.param(b, id=b.name, marks=b.marks) for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param.name == "ray":  # one local cluster for the session: Ray takes seconds to start
        request.getfixturevalue("ray_cluster")
    if request.param.name == "remote":
        server = request.getfixturevalue("remote_server")
        return dataclasses.replace(
            request.param, kwargs={**request.param.kwargs, "url": server.url, "token": server.token}
        )
    if request.param.name == "docker":  # skips loudly without an engine
        return dataclasses.replace(request.param, kwargs={**request.param.kwargs, "image": docker_support.test_image()})
    return request.param


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=8, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def remote_server() -> Iterator[Any]:
    server = RemoteServer().start()
    yield server
    server.stop()


@pytest.fixture
def process_backend(backend: Backend) -> Backend:
    if not backend.local_processes:
        pytest.skip(f"the {backend.name} backend has no worker processes on this machine")
    return backend


@pytest.fixture
def make(backend: Backend) -> Iterator[Callable[..., Any]]:
    """`make(env_id, num_envs, **kwargs)`: a vector env on the current backend, closed afterwards."""
    made: list[Any] = []

    def _make(env_id: Any, num_envs: int, **kwargs: Any) -> Any:
        options = {**backend.kwargs, **kwargs}
        if "num_workers" in options:
            options["num_workers"] = min(options["num_workers"], num_envs)
        venv = rock_envs.make_vec(env_id, num_envs, backend=backend.name, **options)
        made.append(venv)
        return venv

    yield _make
    for venv in made:
        venv.close()


@pytest.fixture
def probe(runtime_ids: None) -> str:
    """A runtime-registered env whose actions sleep, raise or terminate (see `ProbeEnv`)."""
    rock_envs.register("test:Probe-v0", entry_point=ProbeEnv, override=True)
    return "test:Probe-v0"
