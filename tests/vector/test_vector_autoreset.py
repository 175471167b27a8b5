"""The three autoreset modes, checked against single in-process envs."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import rock_envs
from tests.support.envs import CARTPOLE, GUESS

BAD = "oops"  # an invalid guess: GuessTheNumber ends the episode at once
GOOD = "\\boxed{5}"


def test_next_step_resets_on_the_step_after_the_end(make):
    venv = make(GUESS, 2)
    obs0, _ = venv.reset(seed=1)
    _, rewards, terms, _, _ = venv.step([BAD, GOOD])
    assert list(terms) == [True, False] and rewards[0] == pytest.approx(-0.1)
    obs, rewards, terms, truncs, _ = venv.step([GOOD, GOOD])  # env 0: reset, its action ignored
    single = rock_envs.make(GUESS)
    single.reset(seed=1)
    single.step(BAD)
    assert obs[0] == single.reset()[0]
    assert rewards[0] == 0.0 and not terms[0] and not truncs[0]


def test_same_step_gives_final_obs_and_final_info_and_loses_nothing(make):
    venv = make(GUESS, 3, autoreset_mode=AutoresetMode.SAME_STEP)
    assert venv.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    venv.reset(seed=1)
    single = rock_envs.make(GUESS)
    single.reset(seed=2)
    final_obs, _, _, _, final_info = single.step(BAD)
    reset_obs, reset_info = single.reset()
    obs, rewards, terms, truncs, infos = venv.step([GOOD, BAD, GOOD])
    assert list(terms) == [False, True, False] and rewards[1] == pytest.approx(-0.1)
    assert list(infos["_final_obs"]) == [False, True, False]
    assert infos["final_obs"][1] == final_obs  # the last obs of the episode
    assert infos["final_info"]["suffix"][1] == final_info["suffix"]
    assert list(infos["final_info"]["_suffix"]) == [False, True, False]
    assert obs[1] == reset_obs  # and already the first obs of the next one
    obs, rewards, terms, _, _ = venv.step([GOOD, GOOD, GOOD])
    assert not terms.any() and rewards[1] == single.step(GOOD)[1]


def test_same_step_with_array_observations(make):
    venv = make(CARTPOLE, 2, autoreset_mode="same_step")
    venv.reset(seed=0)
    for _ in range(200):
        obs, _, terms, truncs, infos = venv.step([0, 1])
        if terms[0]:
            break
    assert terms[0]
    assert infos["_final_obs"][0] and infos["final_obs"][0].shape == (4,)
    assert abs(obs[0]).max() <= 0.05  # CartPole starts within +-0.05: a fresh episode


def test_disabled_mode_resets_only_the_masked_envs(make):
    venv = make(GUESS, 3, autoreset_mode="disabled")
    assert venv.metadata["autoreset_mode"] is AutoresetMode.DISABLED
    obs0, _ = venv.reset(seed=1)
    obs1, _, terms, _, _ = venv.step([GOOD, BAD, GOOD])
    assert list(terms) == [False, True, False]
    obs2, infos = venv.reset(options={"reset_mask": terms})
    assert obs2[0] == obs1[0] and obs2[2] == obs1[2]  # untouched envs keep their last obs
    single = rock_envs.make(GUESS)
    single.reset(seed=2)
    single.step(BAD)
    assert obs2[1] == single.reset()[0]  # reset with no seed continues the env's own random stream
    assert list(infos["_suffix"]) == [False, True, False]
    with pytest.raises(rock_envs.EnvArgumentError, match=r"must have `dtype=np.bool_`, got int64; pass a bool array"):
        venv.reset(options={"reset_mask": [1, 0, 1]})


def test_disabled_mode_masked_reset_of_array_envs(make):
    venv = make(CARTPOLE, 3, autoreset_mode="disabled")
    obs0, _ = venv.reset(seed=0)
    obs1, *_ = venv.step([0, 0, 0])
    obs2, _ = venv.reset(seed=50, options={"reset_mask": np.array([False, True, False])})
    np.testing.assert_array_equal(obs2[[0, 2]], obs1[[0, 2]])
    np.testing.assert_array_equal(obs2[1], rock_envs.make(CARTPOLE).reset(seed=51)[0])
