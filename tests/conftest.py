"""Shared fixtures. The suite runs in a loopback-only network namespace (see ./run)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture
def runtime_ids():
    """Ids registered by a test are forgotten afterwards."""
    import rock_envs.registry as registry

    before = set(registry._runtime)
    yield
    for env_id in set(registry._runtime) - before:
        registry.unregister(env_id)
