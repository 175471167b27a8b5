"""The vector suite runs once per backend: `make` builds its vector envs on the `backend` fixture's
backend (tests/conftest.py; the backends are listed in tests/support/backends.py)."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

import rock_envs
from tests.support.backends import Backend
from tests.support.envs import ProbeEnv


@pytest.fixture
def process_backend(backend: Backend) -> Backend:
    if not backend.local_processes:
        pytest.skip(f"the {backend.name} backend has no worker processes on this machine")
    return backend


@pytest.fixture
def make(backend: Backend) -> Iterator[Callable[..., Any]]:
    """`make(env_id, num_envs, **kwargs)`: a vector env on the current backend (2 workers unless
    told otherwise, never more than envs), closed afterwards."""
    made: list[Any] = []

    def _make(env_id: Any, num_envs: int, **kwargs: Any) -> Any:
        options = {"num_workers": 2, **backend.kwargs, **kwargs}
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
