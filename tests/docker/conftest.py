"""Docker tests: a real engine, the test image, and a check that the session leaves no container.

Every test here carries the ``docker`` marker and skips with one loud line when no engine answers
(fails instead under ``ROCK_ENVS_REQUIRE_DOCKER=1``).
"""

from __future__ import annotations

import os
import time
from typing import Iterator

import docker_support
import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.docker)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for why in sorted(docker_support.SKIPPED):  # one loud line, even under -q
        terminalreporter.write_line(f"ROCK-ENVS DOCKER TESTS SKIPPED: {why}", red=True, bold=True)


@pytest.fixture(scope="session")
def image() -> str:
    return docker_support.test_image()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def mine() -> list[object]:
    """Containers owned by this test process (embedded managers label them with our pid)."""
    return [
        c for c in docker_support.containers() if c.labels.get("rock-envs.manager", "").startswith(f"{os.getpid()}:")
    ]


@pytest.fixture(scope="session", autouse=True)
def no_container_left() -> Iterator[None]:
    yield
    if docker_support._engine_problem():
        return
    deadline = time.monotonic() + 30
    while mine() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = mine()
    assert not left, f"containers left behind: {[c.name for c in left]}"  # type: ignore[attr-defined]
