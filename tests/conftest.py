"""The fixtures the suite shares, each declared once; the helpers they use are in tests/support.

The suite runs in a loopback-only network namespace (see ./run). Two session-wide checks: no
sandbox agent of this session outlives it, and no container of this process outlives the docker
tests (those that take `image`). A directory's conftest.py holds only what is local to it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from typing import Any, Iterator

import pytest

from tests.support import browser, docker_support, redis
from tests.support.backends import BACKENDS, Backend
from tests.support.paths import short_tmp
from tests.support.processes import agent_pids, settle
from tests.support.ray_nodes import RayNodes
from tests.support.server import SERVE_RUNTIMES, ServerProcess

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # drivers of the suite's clusters: see tests/support/ray_nodes.py


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for why in sorted(docker_support.SKIPPED):  # one loud line, even under -q
        terminalreporter.write_line(f"ROCK-ENVS DOCKER TESTS SKIPPED: {why}", red=True, bold=True)
    for why in sorted(browser.SKIPPED):
        terminalreporter.write_line(f"ROCK-ENVS BROWSER TESTS SKIPPED: {why}", red=True, bold=True)
    for why in sorted(redis.SKIPPED):
        terminalreporter.write_line(f"ROCK-ENVS CLUSTER TESTS SKIPPED: {why}", red=True, bold=True)


@pytest.fixture(scope="session", autouse=True)
def no_leftover_processes() -> Iterator[None]:
    before = agent_pids()
    yield
    assert settle(lambda: not agent_pids() - before), f"sandbox processes left behind: {sorted(agent_pids() - before)}"


@pytest.fixture
def runtime_ids() -> Iterator[None]:
    """Ids registered by a test are forgotten afterwards."""
    import rock_envs.registry as registry

    before = set(registry._runtime)
    yield
    for env_id in set(registry._runtime) - before:
        registry.unregister(env_id)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def embedded_dir() -> Iterator[str]:
    """The runtime dir of the sandboxes tests start in this process (embedded mode)."""
    path = short_tmp()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    """The sandbox suite's server: it offers every sandbox runtime under test. Its log is kept in
    $TMPDIR/rock-envs-test-server.log after the session."""
    srv = ServerProcess(SERVE_RUNTIMES).start()
    yield srv
    srv.stop()
    if os.path.exists(srv.log):
        shutil.copy(srv.log, os.path.join(tempfile.gettempdir(), "rock-envs-test-server.log"))
    shutil.rmtree(srv.runtime_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def remote_server() -> Iterator[ServerProcess]:
    """The remote backend's server: a plain one (process runtime, no caps), shared by its tests."""
    srv = ServerProcess().start()
    yield srv
    srv.stop()
    shutil.rmtree(srv.runtime_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_nodes() -> Iterator[RayNodes]:
    """A real Ray cluster of three nodes on this machine, each its own `ray start`: `head` (2 CPUs),
    `node_a` and `node_b` (3 CPUs each); 8 logical CPUs on whatever cores the machine has (actors are
    mostly idle between requests). Each node has a custom resource named after it. Stopped at the end
    (only what it started)."""
    pytest.importorskip("ray")
    cluster = RayNodes()
    try:
        cluster.start_head(num_cpus=2)
        cluster.add_node("node_a", num_cpus=3)
        cluster.add_node("node_b", num_cpus=3)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def ray_cluster(ray_nodes: RayNodes) -> Iterator[Any]:
    """This process as a driver of the session's multi-node cluster (so, from the backend's view, a
    cluster the caller started)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=ray_nodes.address, log_to_driver=False, configure_logging=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def no_container_left() -> Iterator[None]:
    yield
    if docker_support.engine_problem():
        return
    left = docker_support.own_containers
    assert settle(lambda: not left(), timeout=30, interval=0.2), f"containers left behind: {[c.name for c in left()]}"


@pytest.fixture(scope="session")
def image(no_container_left: None) -> str:
    """The test image (the engine is up, or the test skips or fails loudly); asking for it also
    checks, at the end of the session, that no container of this process is left."""
    return docker_support.test_image()


@pytest.fixture(params=[pytest.param(b, id=b.id, marks=b.marks) for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each backend in turn, with what `make`/`make_vec` need to reach it (see tests/support/backends.py)."""
    b: Backend = request.param
    if b.name == "ray":  # one local cluster for the session: Ray takes seconds to start
        request.getfixturevalue("ray_cluster")
    if b.name == "remote":
        srv: ServerProcess = request.getfixturevalue("remote_server")
        return dataclasses.replace(b, kwargs={**b.kwargs, "url": srv.url, "token": srv.token})
    if b.name == "docker":  # skips loudly without an engine
        return dataclasses.replace(b, kwargs={**b.kwargs, "image": request.getfixturevalue("image")})
    return b
