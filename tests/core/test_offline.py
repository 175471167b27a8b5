"""Every id that `list_envs` marks offline-ready makes, resets and steps once, here, offline."""

from __future__ import annotations

import logging

import pytest

import rock_envs
from rock_envs.requirements import missing_requirement, offline_ready

OFFLINE = [s.id for s in rock_envs.list_envs() if offline_ready(s)]
NOT_OFFLINE = [s.id for s in rock_envs.list_envs() if not offline_ready(s)]


def test_the_marks_split_the_ids_sensibly():
    assert "game:Sokoban-v0-easy" in OFFLINE and "CartPole-v1" in OFFLINE and "rg:maze" in OFFLINE
    assert "math:GSM8K" in NOT_OFFLINE
    assert len(OFFLINE) > 100


@pytest.mark.slow
@pytest.mark.parametrize("env_id", OFFLINE)
def test_every_offline_ready_id_makes_resets_and_steps(env_id, caplog):
    caplog.set_level(logging.WARNING)
    with rock_envs.make(env_id) as env:
        obs, info = env.reset(seed=0)
        assert env.observation_space.contains(obs) or isinstance(obs, str)
        try:
            action = env.sample_random_action()
        except NotImplementedError:  # single-turn reasoning tasks have no action grammar to sample
            action = "\\boxed{1}"
        env.step(action)


@pytest.mark.parametrize("env_id", [i for i in NOT_OFFLINE if i.split(":")[0] in ("game", "rg")] + ["Ant-v2"])
def test_ids_that_need_something_say_what_at_make(env_id):
    spec = rock_envs.spec(env_id)
    missing = missing_requirement(spec)
    if missing is None:
        pytest.skip(f"{env_id}: what it needs is installed here")
    with pytest.raises(rock_envs.MissingDependencyError) as caught:
        rock_envs.make(env_id)
    assert env_id in str(caught.value) and spec.needs in str(caught.value)
