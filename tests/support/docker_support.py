"""What every docker test needs: an engine (or one loud skip), the test image, and a leak check.

Without a reachable engine, docker tests skip with one line saying why (tests/conftest.py prints
those lines at the end of the run), unless ``ROCK_ENVS_REQUIRE_DOCKER=1`` (CI), where they fail
instead. The image is ``$ROCK_ENVS_TEST_IMAGE`` when set (``./run test`` builds it), else built once here.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import pytest

REQUIRE = os.environ.get("ROCK_ENVS_REQUIRE_DOCKER") == "1"
SANDBOX_LABEL = "rock-envs.sandbox"


@functools.cache
def engine_problem() -> str | None:
    try:
        import docker
    except ImportError:
        return "the Docker SDK is not installed (pip install 'rock-envs[docker]')"
    try:
        client = docker.from_env(timeout=30)
        client.ping()
        client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine here
        return f"no Docker engine answers ({type(exc).__name__}: {exc}); start one with scripts/docker-engine.sh"
    return None


SKIPPED: set[str] = set()
"""Why docker tests skipped; tests/conftest.py prints it once at the end of the run."""


def unavailable(why: str) -> None:
    """Skip this docker test saying `why` (announced at the end of the run); fail it under REQUIRE."""
    if REQUIRE:
        pytest.fail(f"ROCK_ENVS_REQUIRE_DOCKER=1 but {why}", pytrace=False)
    SKIPPED.add(why)
    pytest.skip(f"docker: {why}")


def require_engine() -> None:
    why = engine_problem()
    if why:
        unavailable(why)


@functools.cache
def _image() -> tuple[str | None, str | None]:
    tag = os.environ.get("ROCK_ENVS_TEST_IMAGE")
    if tag:
        return tag, None
    try:
        from rock_envs.sandbox.images import build_image

        return build_image(), None
    except Exception as exc:  # noqa: BLE001
        return None, f"no test image: ROCK_ENVS_TEST_IMAGE is unset and building one failed ({exc})"


def test_image() -> str:
    """The engine is up and the image exists (or the test skips/fails loudly)."""
    require_engine()
    tag, why = _image()
    if tag is None:
        unavailable(str(why))
    assert tag is not None
    return tag


test_image.__test__ = False  # type: ignore[attr-defined]


@dataclass
class Container:
    id: str
    name: str
    labels: dict[str, str]


def containers(**labels: str) -> list[Container]:
    """Every container (running or not) carrying a rock-envs sandbox label (and ``labels``).

    One list call, no per-container inspect: containers may vanish (auto-remove) meanwhile.
    """
    import docker

    client = docker.from_env(timeout=30)
    try:
        wanted = [SANDBOX_LABEL] + [f"{k}={v}" for k, v in labels.items()]
        found = client.api.containers(all=True, filters={"label": wanted})
        return [Container(c["Id"], (c.get("Names") or ["?"])[0].lstrip("/"), c.get("Labels") or {}) for c in found]
    finally:
        client.close()


def own_containers() -> list[Container]:
    """Containers owned by this test process (embedded managers label them with our pid)."""
    return [c for c in containers() if c.labels.get("rock-envs.manager", "").startswith(f"{os.getpid()}:")]
