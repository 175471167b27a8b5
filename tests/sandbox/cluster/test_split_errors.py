"""Bad ``--role`` flags and unreachable peers stop ``rock-envs serve`` at once with a message naming the fix."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from rock_envs.sandbox import SandboxConfig
from rock_envs.sandbox.errors import InvalidRequestError
from rock_envs.sandbox.sdk.sandbox import Sandbox
from tests.sandbox.cluster.conftest import Cluster
from tests.support.paths import PYTHON
from tests.support.server import ServerProcess, free_port


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [PYTHON, "-m", "rock_envs.sandbox.server", "--port", str(free_port()), "--token", "t", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "writer"], "--role takes one of single, control, data; got 'writer'"),
        (["--role", "data"], "--role data: needs --control URL"),
        (["--role", "control"], "--role control: needs --redis URL"),
        (["--redis", "redis://127.0.0.1:6379/0"], "add --role control (with --redis)"),
        (["--role", "control", "--redis", "nonsense"], "--redis 'nonsense' is not a Redis URL"),
    ],
)
def test_bad_role_flags_are_refused_before_serving(args: list[str], message: str) -> None:
    done = serve(*args)
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_an_unreachable_redis_stops_the_control_plane_with_its_address() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    done = serve("--role", "control", "--redis", url)
    assert done.returncode != 0
    assert f"the shared store at {url} did not answer" in done.stderr and "redis-server" in done.stderr


def test_an_unreachable_control_plane_stops_a_replica() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = serve("--role", "data", "--control", url)
    assert done.returncode != 0 and f"no control plane answers at {url}" in done.stderr, done.stderr


def test_a_replica_of_a_replica_or_with_a_wrong_token_is_refused(cluster: Cluster) -> None:
    done = serve("--role", "data", "--control", cluster.control.url)  # serve() passes token "t"
    assert done.returncode != 0 and "refused the token" in done.stderr, done.stderr
    replica = cluster.replicas[0].url
    done = serve("--role", "data", "--control", replica, "--token", cluster.control.token)
    assert done.returncode != 0 and f"{replica} is a 'data' server, not a control plane" in done.stderr, done.stderr


def test_the_typer_cli_checks_the_role_too() -> None:
    done = subprocess.run(
        [PYTHON, "-m", "rock_envs.cli", "serve", "--role", "reader"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "expected single, control or data" in done.stderr, done.stderr


@pytest.mark.anyio
async def test_data_urls_without_a_control_plane_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match="pass `base_url=` the control plane's URL"):
        await Sandbox(SandboxConfig(data_urls=["http://127.0.0.1:1"])).start()


def test_a_single_server_needs_no_redis(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/cluster", headers=server.headers).json() == {"role": "single"}
    code = "import sys, rock_envs.sandbox.server.app, rock_envs.sandbox.server.run; sys.exit('redis' in sys.modules)"
    assert subprocess.run([PYTHON, "-c", code], timeout=60).returncode == 0  # the client is imported only by a split
