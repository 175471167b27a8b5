"""Spaces, batching, seeding, determinism against single in-process envs, infos, call/get_attr/set_attr."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import rock_envs
from rock_envs.core.spaces import AnyText
from tests.support.envs import CARTPOLE, GUESS, MOVES, SOKOBAN


def test_is_a_gymnasium_vector_env_with_batched_spaces(make):
    with make(CARTPOLE, 4) as venv:
        assert isinstance(venv, gymnasium.vector.VectorEnv)
        assert venv.num_envs == 4
        assert venv.single_observation_space == gymnasium.spaces.Box(
            venv.single_observation_space.low, venv.single_observation_space.high, (4,), np.float32
        )
        assert venv.observation_space.shape == (4, 4)
        assert venv.single_action_space == gymnasium.spaces.Discrete(2)
        assert venv.action_space == gymnasium.spaces.MultiDiscrete([2, 2, 2, 2])
        assert venv.metadata["autoreset_mode"] is gymnasium.vector.AutoresetMode.NEXT_STEP
        obs, infos = venv.reset(seed=0)
        assert isinstance(obs, np.ndarray) and obs.shape == (4, 4) and obs.dtype == np.float32
        assert venv.observation_space.contains(obs)
    assert venv.closed


def test_text_observations_are_a_tuple_of_str(make):
    venv = make(SOKOBAN, 3)
    assert isinstance(venv.single_observation_space, AnyText)
    obs, infos = venv.reset(seed=0)
    assert isinstance(obs, tuple) and len(obs) == 3 and all(isinstance(o, str) for o in obs)
    obs, rewards, terms, truncs, infos = venv.step([MOVES[0], MOVES[1], MOVES[2]])
    assert isinstance(obs, tuple) and all(isinstance(o, str) for o in obs)
    assert rewards.dtype == np.float64 and rewards.shape == (3,)
    assert terms.dtype == np.bool_ and truncs.dtype == np.bool_


def test_int_seed_seeds_env_i_with_seed_plus_i_and_a_list_seeds_each(make):
    venv = make(SOKOBAN, 3)
    obs, _ = venv.reset(seed=10)
    singles = [rock_envs.make(SOKOBAN) for _ in range(3)]
    expected = [env.reset(seed=10 + i)[0] for i, env in enumerate(singles)]
    assert obs == tuple(expected)
    obs, _ = venv.reset(seed=[7, 3, 5])
    assert obs == tuple(env.reset(seed=s)[0] for env, s in zip(singles, [7, 3, 5]))
    with pytest.raises(rock_envs.EnvArgumentError, match="expected an int or 3 seeds, got 2 seeds"):
        venv.reset(seed=[1, 2])


def _single_next_step(env_id, seeds, actions_per_step):
    """What NEXT_STEP autoreset gives, computed with single in-process envs."""
    envs = [rock_envs.make(env_id) for _ in seeds]
    obs = [env.reset(seed=s)[0] for env, s in zip(envs, seeds)]
    done = [False] * len(envs)
    history = [obs]
    for actions in actions_per_step:
        row = []
        for k, (env, a) in enumerate(zip(envs, actions)):
            if done[k]:
                o, _ = env.reset()
                done[k] = False
            else:
                o, _, te, tr, _ = env.step(a)
                done[k] = bool(te or tr)
            row.append(o)
        history.append(row)
    return history


@pytest.mark.parametrize("env_id", [CARTPOLE, SOKOBAN, GUESS])
def test_same_seeds_give_the_trajectories_of_single_in_process_envs(make, env_id):
    n, steps = 4, 24
    rng = np.random.default_rng(0)
    if env_id == CARTPOLE:
        actions = [[int(a) for a in rng.integers(0, 2, n)] for _ in range(steps)]
    elif env_id == SOKOBAN:
        # One episode only: GEM's Sokoban draws a seedless reset's room from OS entropy, so no two
        # runs agree after an autoreset, in-process or not (see the report on GemEnv).
        actions = [[MOVES[i] for i in rng.integers(0, 4, n)] for _ in range(18)]
    else:  # guesses, with an invalid one now and then (it ends the episode)
        actions = [[f"\\boxed{{{g}}}" if g < 9 else "oops" for g in rng.integers(1, 11, n)] for _ in range(steps)]
    expected = _single_next_step(env_id, [100 + i for i in range(n)], actions)
    venv = make(env_id, n)
    got = [venv.reset(seed=100)[0]]
    for a in actions:
        got.append(venv.step(a)[0])
    for t, (g, e) in enumerate(zip(got, expected)):
        if env_id == CARTPOLE:
            np.testing.assert_array_equal(g, np.stack(e), err_msg=f"step {t}")
        else:
            assert g == tuple(e), f"step {t}"


def test_infos_are_dicts_of_arrays_with_masks(make, probe):
    venv = make(probe, 4)
    obs, infos = venv.reset(seed=0)
    assert list(infos["where"]) == ["reset"] * 4 and infos["_where"].all()
    obs, _, _, _, infos = venv.step([0, 0, 0, 0])
    assert infos["steps"].dtype == np.int64 and list(infos["steps"]) == [1, 1, 1, 1]
    assert infos["_steps"].dtype == np.bool_ and infos["_steps"].all()
    venv = make(SOKOBAN, 2)
    _, infos = venv.reset(seed=0)
    assert infos["suffix"].dtype == object and isinstance(infos["suffix"][0], str) and infos["_suffix"].all()


def test_call_get_attr_set_attr(make):
    venv = make(SOKOBAN, 3)
    venv.reset(seed=0)
    actions = venv.call("sample_random_action")
    assert len(actions) == 3 and all(isinstance(a, str) and a.startswith("\\boxed{") for a in actions)
    venv.set_attr("tag", ["a", "b", "c"])
    assert venv.get_attr("tag") == ("a", "b", "c")
    venv.set_attr("tag", "same")
    assert venv.get_attr("tag") == ("same",) * 3
    with pytest.raises(rock_envs.EnvArgumentError, match=r"expected 3 values, got 2"):
        venv.set_attr("tag", ["x", "y"])
    with pytest.raises(rock_envs.RemoteError, match="AttributeError") as caught:
        venv.get_attr("no_such_attribute")
    assert "Traceback" in caught.value.remote_traceback
    assert venv.get_attr("tag") == ("same",) * 3  # the workers are unharmed


def test_env_factories_may_be_lambdas_and_closures(make):
    size = 2

    def factory():
        return gymnasium.make(CARTPOLE, max_episode_steps=size * 5)

    for fn in (lambda: gymnasium.make(CARTPOLE), factory):
        venv = make(fn, 3)
        obs, _ = venv.reset(seed=0)
        assert obs.shape == (3, 4)
    truncated = np.zeros(3, bool)
    for _ in range(size * 5):
        _, _, terms, truncs, _ = venv.step([0, 1, 0])
        truncated |= truncs | terms
    assert truncated.all()  # the closure's max_episode_steps reached the workers
