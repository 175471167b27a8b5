"""One local Ray cluster for the whole session (Ray takes seconds to start), and a check that none is left."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster started by the test session (so, from the backend's view, by the caller).

    8 logical CPUs on whatever cores the machine has: actors are mostly idle between requests.
    """
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=8, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    if started:
        ray.shutdown()
