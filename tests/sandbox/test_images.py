"""The offline-built rock-envs image (rock_envs.sandbox.images) on a real Docker engine.

The suite runs in a loopback-only network namespace where nothing can be downloaded, so the image
is normally built beforehand (`./run test` exports ROCK_ENVS_TEST_IMAGE from
`python -m rock_envs.sandbox.images --print-tag`, run outside the namespace); these tests
then only need the engine's unix socket and the build cache.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.docker_support import unavailable

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]  # a cold build takes minutes


@pytest.fixture(scope="module")
def client():
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as e:
        unavailable(
            f"no Docker engine answers ({type(e).__name__}: {e}); start one as root with scripts/docker-engine.sh"
        )
    yield client
    client.close()


@pytest.fixture(scope="module")
def image(client) -> str:
    from rock_envs.sandbox.images import ImageBuildError, build_image

    tag = os.environ.get("ROCK_ENVS_TEST_IMAGE")
    if tag:
        import docker.errors

        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            pytest.fail(f"ROCK_ENVS_TEST_IMAGE={tag} is not in the local engine", pytrace=False)
        return tag
    try:
        return build_image()
    except ImageBuildError as e:
        unavailable(f"no test image: ROCK_ENVS_TEST_IMAGE is unset and building failed: {e}")


def test_image_runs_offline_with_the_project_installed(client, image):
    code = (
        "import gem, gymnasium, rock_envs, fastapi, uvicorn, msgpack, shutil; "
        "print(rock_envs.__file__, shutil.which('bash') is not None)"
    )
    out = client.containers.run(image, ["python", "-c", code], remove=True, network_disabled=True).decode()
    path, has_bash = out.split()
    assert path.startswith("/opt/rock-envs/") and has_bash == "True", out


def _snapshot(root: Path, dest: Path) -> Path:
    # Build from a copy, so that someone editing the working tree meanwhile is not "a change".
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (root / name).exists():
            shutil.copy2(root / name, dest / name)
    for sub in ("rock_envs", "registry"):
        if (root / sub).is_dir():
            shutil.copytree(root / sub, dest / sub, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_second_build_reuses_the_cached_image(client, image, monkeypatch, tmp_path):
    from rock_envs.sandbox import images

    labels = client.images.get(image).labels
    # Rebuild the recipe the test image came from (it may have been built on a user's base).
    kwargs = {
        "base": labels.get("org.rock-envs.base"),
        "extras": tuple(filter(None, labels.get("org.rock-envs.extras", "server").split(","))),
        "project_root": _snapshot(images.find_project_root(), tmp_path / "src"),
    }
    try:  # usually cached already; a build here must work offline from the wheel caches
        first = images.build_image(**kwargs)
    except images.ImageBuildError as e:
        unavailable(
            f"cannot build offline here ({e}); warm the caches outside the namespace "
            "with python -m rock_envs.sandbox.images"
        )
    before = client.images.get(first).id

    def no_build(*args, **kwargs):
        raise AssertionError("build_image rebuilt although nothing changed")

    monkeypatch.setattr(images, "_build", no_build)
    assert images.build_image(**kwargs) == first
    assert client.images.get(first).id == before


def test_missing_base_is_a_clear_error_and_nothing_is_pulled(client):
    import docker.errors

    from rock_envs.sandbox.images import ImageBuildError, build_image

    missing = "rock-envs-test/no-such-base:never"
    with pytest.raises(ImageBuildError, match="never pulls"):
        build_image(base=missing)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(missing)
