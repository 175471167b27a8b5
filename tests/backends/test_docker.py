"""make / make_vec on the docker backend: envs in containers, packing, and one env per container.

The shared suites (tests/vector and tests/backends/test_single_env.py, backend "docker") check
spaces, autoreset, send/recv, seeding, env errors and `docker kill` of a worker; this file checks
what only docker has.
"""

from __future__ import annotations

import os
import re
from typing import Iterator

import numpy as np
import pytest

import rock_envs
from tests.support import docker_support
from tests.support.envs import SOKOBAN

pytestmark = pytest.mark.docker


def _containers_of(venv) -> set[str]:  # type: ignore[no-untyped-def]
    return {venv.group.describe(w)["container"] for w in range(venv.group.num_workers)}


def test_make_gives_one_env_in_one_container(image: str) -> None:
    env = rock_envs.make(SOKOBAN, backend="docker", image=image)
    try:
        obs, info = env.reset(seed=42)
        assert isinstance(obs, str) and obs
        local = rock_envs.make(SOKOBAN)
        assert local.reset(seed=42)[0] == obs  # same seed, same start, wherever it runs
        local.close()
        obs, reward, terminated, truncated, info = env.step("\\boxed{up}")
        assert isinstance(obs, str)
        assert len(docker_support.containers(**{"rock-envs.user.role": "env-worker"})) >= 1
    finally:
        env.close()


def test_envs_per_container_one_gives_each_env_its_own_container(image: str) -> None:
    with rock_envs.make_vec(SOKOBAN, 3, backend="docker", image=image, envs_per_container=1) as venv:
        venv.reset(seed=0)
        assert venv.group.num_workers == 3 and len(_containers_of(venv)) == 3
        cids = _containers_of(venv)
    assert not [c for c in docker_support.containers() if c.id in cids]


def test_the_default_packs_many_envs_per_container(image: str) -> None:
    with rock_envs.make_vec("CartPole-v1", 8, backend="docker", image=image) as venv:
        obs, _ = venv.reset(seed=0)
        assert obs.shape == (8, 4)
        assert venv.group.num_workers < 8
        with rock_envs.make_vec("CartPole-v1", 8, backend="subprocess") as ref:
            np.testing.assert_array_equal(ref.reset(seed=0)[0], obs)
        obs, rewards, *_ = venv.step(np.zeros(8, dtype=np.int64))
        assert rewards.tolist() == [1.0] * 8


def test_the_specs_image_and_memory_are_the_containers_when_the_call_gives_none(image: str) -> None:
    import docker

    rock_envs.register(
        "test:ImagedCartPole-v0",
        entry_point="gymnasium.envs.classic_control:CartPoleEnv",
        backend="docker",
        image=image,
        memory="300m",
    )
    with rock_envs.make_vec("test:ImagedCartPole-v0", 2, num_workers=1) as venv:
        assert venv.group.name == "docker"
        venv.reset(seed=0)
        [cid] = _containers_of(venv)
        attrs = docker.from_env(timeout=30).containers.get(cid).attrs
        assert attrs["Config"]["Image"] == image
        assert attrs["HostConfig"]["Memory"] == 300 * 1024 * 1024


@pytest.fixture
def second_image(image: str) -> Iterator[str]:
    """A second tag of the test image, made offline (`docker tag`) and removed afterwards."""
    import docker

    client = docker.from_env(timeout=30)
    tag = f"rock-envs-test-second:{os.getpid()}"
    client.images.get(image).tag(tag)
    yield tag
    client.images.remove(tag)  # untags only: the image keeps its own tag
    client.close()


def test_envs_of_different_images_go_to_containers_of_their_own_image(
    image: str, second_image: str, runtime_ids: None
) -> None:
    """A mix whose specs name two images: each worker's container runs one image, and a killed
    container comes back on its image with its envs rebuilt as they were."""
    import docker

    for env_id, its_image in [("test:CartPoleA-v0", image), ("test:CartPoleB-v0", second_image)]:
        rock_envs.register(env_id, entry_point="gymnasium.envs.classic_control:CartPoleEnv", image=its_image)
    ids = ["test:CartPoleA-v0"] * 2 + ["test:CartPoleB-v0"] * 3 + ["test:CartPoleA-v0"]
    client = docker.from_env(timeout=30)

    def images(venv) -> list[str]:  # type: ignore[no-untyped-def]
        return [client.containers.get(cid).attrs["Config"]["Image"] for cid in _worker_containers(venv)]

    with rock_envs.make_vec(ids, backend="docker") as venv:
        assert venv.blocks == [[0, 1], [2, 3, 4], [5]]  # three runs: three containers, though 2 cores
        assert images(venv) == [image, second_image, image]
        first, infos = venv.reset(seed=0)
        assert list(infos["env_id"]) == ids
        before = _worker_containers(venv)
        venv.group.kill(1)
        obs, _, _, truncs, infos = venv.step(np.zeros(6, dtype=np.int64))
        assert list(infos["_worker_restarted"]) == [False, False, True, True, True, False]
        np.testing.assert_array_equal(obs[2:5], first[2:5])  # re-seeded with their seeds
        after = _worker_containers(venv)
        assert after[0] == before[0] and after[1] != before[1]
        assert images(venv) == [image, second_image, image] and list(infos["env_id"]) == ids
    with pytest.raises(rock_envs.EnvArgumentError, match=re.escape("need at least 3 workers")):
        rock_envs.make_vec(ids, backend="docker", num_workers=2)
    with rock_envs.make_vec(
        ids, backend="docker", image=image, num_workers=1
    ) as venv:  # the caller's image: one for all
        assert images(venv) == [image]
    client.close()


def _worker_containers(venv) -> list[str]:  # type: ignore[no-untyped-def]
    return [venv.group.describe(w)["container"] for w in range(venv.group.num_workers)]
