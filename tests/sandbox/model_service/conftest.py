"""Model-service fixtures: sandbox configs with a model service, and an upstream stand-in.

``make_config`` follows the ``mode`` fixture (tests/sandbox/conftest.py): embedded, or through the
session's server (process runtime; docker tests ask for it themselves). Programs run inside
sandboxes with this interpreter, which has ``openai`` installed.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable

import pytest

from rock_envs.sandbox import SandboxConfig
from tests.sandbox.model_service.upstream_stub import Upstream
from tests.support.server import ServerProcess


@pytest.fixture
def make_config(mode: str, request: pytest.FixtureRequest, embedded_dir: str) -> Callable[..., SandboxConfig]:
    def make(**fields: Any) -> SandboxConfig:
        fields.setdefault("model_service", "trainer")
        if mode == "server":
            srv: ServerProcess = request.getfixturevalue("server")
            return SandboxConfig(base_url=srv.url, token=srv.token, **fields)
        return SandboxConfig(runtime_dir=embedded_dir, **fields)

    return make


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """An OpenAI-compatible stand-in on 127.0.0.1 (what proxy mode forwards to)."""
    stub = Upstream()
    stub.start()
    yield stub
    stub.stop()
