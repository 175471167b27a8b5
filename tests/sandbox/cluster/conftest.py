"""A real split server: Debian's redis-server, one control plane and data replicas, each its own process."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Iterator

import pytest

from tests.support.redis import SKIPPED, RedisProcess, redis_problem
from tests.support.server import ServerProcess


@dataclass
class Cluster:
    redis: RedisProcess
    control: ServerProcess
    replicas: list[ServerProcess]
    namespace: str

    @property
    def data_urls(self) -> list[str]:
        return [r.url for r in self.replicas]

    def stop(self) -> None:
        for srv in [*self.replicas, self.control]:
            srv.stop()
            shutil.rmtree(srv.runtime_dir, ignore_errors=True)


def start_cluster(redis: RedisProcess, replicas: int) -> Cluster:
    """A control plane on ``redis`` (its own namespace) and ``replicas`` data replicas of it."""
    namespace = "test-" + os.urandom(4).hex()
    control = ServerProcess(["--role", "control", "--redis", redis.url, "--namespace", namespace]).start()
    started = Cluster(redis, control, [], namespace)
    try:
        for _ in range(replicas):
            replica = ServerProcess(["--role", "data", "--control", control.url], token=control.token)
            started.replicas.append(replica.start())
    except BaseException:
        started.stop()
        raise
    return started


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    """redis-server on 127.0.0.1 at a free port for the session; skips loudly (fails under CI) without it."""
    problem = redis_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"redis-server is needed in CI: {problem}")
        SKIPPED.add(problem)
        pytest.skip(problem)
    server = RedisProcess().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(redis_server: RedisProcess) -> Iterator[Cluster]:
    """A control plane and three data replicas, shared by a module's tests."""
    started = start_cluster(redis_server, 3)
    yield started
    started.stop()
