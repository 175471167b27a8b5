"""ROCK wire fixtures: a real `rock-envs serve` per runtime, and rl-rock's own client pointed at it.

rl-rock 1.11.0 is used unchanged. Its config defaults are frozen at import, so every config here
passes `base_url` and the token (as `extra_headers`, ROCK's way) explicitly. `NO_PROXY` keeps
httpx's proxy settings off loopback (rl-rock's client reads them).
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Iterator

import pytest

from tests.support.server import RUNTIMES, ServerProcess

os.environ["NO_PROXY"] = "127.0.0.1,localhost"
pytestmark = pytest.mark.anyio


class RockServer:
    """A server process and how rl-rock reaches it."""

    def __init__(self, srv: ServerProcess, runtime: str):
        self.srv, self.runtime = srv, runtime

    @property
    def url(self) -> str:
        return self.srv.url

    @property
    def token(self) -> str:
        return self.srv.token

    def config(self, **kwargs: Any) -> Any:
        from rock.sdk.sandbox.config import SandboxConfig

        kwargs.setdefault("extra_headers", {"Authorization": f"Bearer {self.token}"})
        return SandboxConfig(base_url=self.url, **kwargs)

    def sandbox(self, **kwargs: Any) -> Any:
        from rock.sdk.sandbox.client import Sandbox

        return Sandbox(self.config(**kwargs))


_SERVERS: dict[str, RockServer] = {}


@pytest.fixture(scope="session")
def _rock_servers() -> Iterator[dict[str, RockServer]]:
    yield _SERVERS
    for rock in _SERVERS.values():
        rock.srv.stop()
        shutil.rmtree(rock.srv.runtime_dir, ignore_errors=True)


@pytest.fixture(params=[pytest.param(r, marks=[pytest.mark.docker] if r == "docker" else []) for r in RUNTIMES])
def rock(request: pytest.FixtureRequest, _rock_servers: dict[str, RockServer]) -> RockServer:
    """`rock-envs serve` whose ROCK sandboxes run on each runtime under test (docker: ROCK's
    default image `python:3.11` mapped to the test image)."""
    runtime = str(request.param)
    if runtime not in _rock_servers:
        args = ["--runtime", runtime]
        if runtime == "docker":
            args += ["--image-map", f"python:3.11={request.getfixturevalue('image')}"]
        _rock_servers[runtime] = RockServer(ServerProcess(args).start(), runtime)
    elif runtime == "docker":
        request.getfixturevalue("image")
    return _rock_servers[runtime]


@pytest.fixture
def docker_rock(image: str, _rock_servers: dict[str, RockServer]) -> RockServer:
    """The docker-runtime server only."""
    if "docker" not in _rock_servers:
        args = ["--runtime", "docker", "--image-map", f"python:3.11={image}"]
        _rock_servers["docker"] = RockServer(ServerProcess(args).start(), "docker")
    return _rock_servers["docker"]


@pytest.fixture
def process_rock(_rock_servers: dict[str, RockServer]) -> RockServer:
    """The process-runtime server only (for tests about the wire itself, not the runtime)."""
    if "process" not in _rock_servers:
        _rock_servers["process"] = RockServer(ServerProcess(["--runtime", "process"]).start(), "process")
    return _rock_servers["process"]


@pytest.fixture
async def sandbox(rock: RockServer) -> Any:
    sb = rock.sandbox()
    await sb.start()
    yield sb
    await sb.stop()
