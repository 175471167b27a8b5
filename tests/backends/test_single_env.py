"""`rock_envs.make(id, backend=...)`: one env off this process, with the same face as a local one."""

from __future__ import annotations

import numpy as np
import pytest

import rock_envs

BACKENDS = ["subprocess"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_text_env_matches_the_local_one(backend):
    local = rock_envs.make("game:Sokoban-v0-easy")
    with rock_envs.make("game:Sokoban-v0-easy", backend=backend) as env:
        assert env.spec.id == "game:Sokoban-v0-easy"
        obs, info = env.reset(seed=42)
        assert (obs, info) == local.reset(seed=42)
        for action in ["\\boxed{up}", "\\boxed{left}", "\\boxed{down}"]:
            assert env.step(action) == local.step(action)
        assert env.sample_random_action() in ["\\boxed{up}", "\\boxed{down}", "\\boxed{left}", "\\boxed{right}"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_array_env_matches_the_local_one(backend):
    local = rock_envs.make("CartPole-v1")
    with rock_envs.make("CartPole-v1", backend=backend) as env:
        np.testing.assert_array_equal(env.reset(seed=1)[0], local.reset(seed=1)[0])
        for action in [0, 1, 1, 0]:
            got, want = env.step(action), local.step(action)
            np.testing.assert_array_equal(got[0], want[0])
            assert got[1:4] == want[1:4]
