"""Sandbox fixtures: ``sb`` and ``config`` parametrized over mode x runtime.

Modes: ``embedded`` (a manager in this process) and ``server`` (the session's server process on
127.0.0.1). Runtimes: ``process`` and ``docker`` (``ROCK_ENVS_SANDBOX_RUNTIMES`` narrows them);
docker tests carry the ``docker`` marker and skip with one loud line when no engine answers.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import pytest

from rock_envs.sandbox import Sandbox, SandboxConfig
from tests.support.server import RUNTIMES, ServerProcess

MODES = ["embedded", "server"]


@pytest.fixture(params=[pytest.param(r, marks=[pytest.mark.docker] if r == "docker" else []) for r in RUNTIMES])
def runtime(request: pytest.FixtureRequest) -> str:
    if request.param == "docker":
        request.getfixturevalue("image")
    return str(request.param)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def config(mode: str, runtime: str, request: pytest.FixtureRequest, embedded_dir: str) -> SandboxConfig:
    extra: dict[str, Any] = {"image": request.getfixturevalue("image")} if runtime == "docker" else {}
    if mode == "server":
        srv: ServerProcess = request.getfixturevalue("server")
        return SandboxConfig(runtime=runtime, base_url=srv.url, token=srv.token, **extra)  # type: ignore[arg-type]
    return SandboxConfig(runtime=runtime, runtime_dir=embedded_dir, **extra)  # type: ignore[arg-type]


@pytest.fixture
async def sb(config: SandboxConfig) -> AsyncIterator[Sandbox]:
    async with Sandbox(config) as sandbox:
        yield sandbox
