"""`rock_envs.make` with real GEM and Gymnasium envs: the contract, spaces, seeding, check_env."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rock_envs
from rock_envs.core.spaces import AnyText
from tests.support.envs import MOVES, SOKOBAN


def test_cartpole_through_rock_envs_passes_gymnasiums_checker():
    env = rock_envs.make("CartPole-v1")
    assert isinstance(env, gymnasium.Env) and isinstance(env, rock_envs.Env)
    assert env.observation_space == gymnasium.spaces.Box(
        -np.inf, np.inf, (4,), np.float32
    ) or env.observation_space.shape == (4,)
    assert env.action_space == gymnasium.spaces.Discrete(2)
    with pytest.warns(UserWarning):  # Gymnasium's own notes on CartPole's infinite bounds
        check_env(env, skip_render_check=True)
    env.close()


def test_gymnasium_env_keeps_spec_unwrapped_and_random_action():
    env = rock_envs.make("CartPole-v1", max_episode_steps=7)
    assert env.spec.id == "CartPole-v1" and env.spec.source == "gymnasium"
    assert type(env.unwrapped).__name__ == "CartPoleEnv"
    env.reset(seed=3)
    steps = 0
    while True:
        obs, reward, terminated, truncated, info = env.step(env.sample_random_action())
        steps += 1
        if terminated or truncated:
            break
    assert steps <= 7 and (truncated or terminated)


def test_gem_env_has_the_gem_contract():
    with rock_envs.make(SOKOBAN) as env:
        obs, info = env.reset(seed=42)
        assert isinstance(obs, str) and "Sokoban" in obs
        assert isinstance(env.observation_space, AnyText) and env.observation_space.contains(obs)
        assert env.action_space.contains("\\boxed{up}") and not env.action_space.contains(3)
        action = env.sample_random_action()
        assert action in MOVES
        obs, reward, terminated, truncated, info = env.step(action)
        assert isinstance(obs, str) and isinstance(reward, float)
        assert isinstance(terminated, bool) and isinstance(truncated, bool)
        assert env.spec.id == SOKOBAN and env.spec.source == "gem"
        assert type(env.unwrapped).__name__ == "SokobanEnv"
        assert env.room_state is not None  # env attributes stay reachable
    with pytest.raises(rock_envs.EnvClosedError, match="after `close\\(\\)`"):
        env.step("\\boxed{up}")
    env.close()  # twice is fine


def _trajectory(env, seed, actions):
    out = [env.reset(seed=seed)[0]]
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        out.append((obs, reward, terminated, truncated))
    return out


@pytest.mark.parametrize("env_id", [SOKOBAN, "game:Game2048-v0-easy", "game:GuessTheNumber-v0-random"])
def test_same_seed_same_trajectory_even_when_gem_envs_interleave(env_id):
    actions = (
        [MOVES[k % 4] for k in range(12)]
        if "Sokoban" in env_id or "2048" in env_id
        else [f"\\boxed{{{k}}}" for k in range(1, 13)]
    )
    alone = _trajectory(rock_envs.make(env_id), 7, actions)
    a, b = rock_envs.make(env_id), rock_envs.make(env_id)
    # Interleave two envs stepping from different seeds: GEM draws from Python's global `random`,
    # which the adapter keeps per env.
    a_obs, b_obs = [a.reset(seed=7)[0]], [b.reset(seed=8)[0]]
    for act in actions:
        a_obs.append(a.step(act)[:4])
        b_obs.append(b.step(act)[:4])
    assert a_obs == alone
    assert _trajectory(rock_envs.make(env_id), 8, actions) == b_obs


def test_same_seed_same_trajectory_for_gymnasium():
    env1, env2 = rock_envs.make("CartPole-v1"), rock_envs.make("CartPole-v1")
    actions = [k % 2 for k in range(30)]
    t1, t2 = _trajectory(env1, 5, actions), _trajectory(env2, 5, actions)
    np.testing.assert_array_equal(t1[0], t2[0])
    for x, y in zip(t1[1:], t2[1:]):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:] == y[1:]


def test_unknown_id_names_the_three_closest():
    with pytest.raises(rock_envs.UnknownEnvError) as caught:
        rock_envs.make("game:Sokoban-v0-eazy")
    assert isinstance(caught.value, KeyError)
    message = str(caught.value)
    assert "'game:Sokoban-v0-eazy'" in message and "Did you mean" in message
    assert caught.value.suggestions[0] == "game:Sokoban-v0-easy" and len(caught.value.suggestions) == 3


@pytest.mark.parametrize("env_id, accepted", [("CartPole-v1", "sutton_barto_reward"), (SOKOBAN, "dim_room")])
def test_bad_kwargs_name_the_argument_and_the_env(env_id, accepted):
    with pytest.raises(rock_envs.EnvArgumentError) as caught:
        rock_envs.make(env_id, colour="red")
    assert isinstance(caught.value, TypeError)
    assert "'colour'" in str(caught.value) and env_id in str(caught.value) and accepted in str(caught.value)
    rock_envs.make(env_id).close()  # nothing else broke


def test_env_needing_missing_data_fails_at_make_saying_what_and_how():
    pytest.importorskip("nltk")
    import nltk

    try:
        nltk.data.find("corpora/words")
        pytest.skip("NLTK's words corpus is installed here")
    except LookupError:
        pass
    with pytest.raises(rock_envs.MissingDependencyError) as caught:
        rock_envs.make("game:Wordle-v0-easy")
    assert "words" in str(caught.value) and "nltk.downloader" in str(caught.value)
    assert isinstance(caught.value, ImportError)


def test_dataset_env_fails_at_make_naming_the_package():
    with pytest.raises(rock_envs.MissingDependencyError, match="datasets"):
        rock_envs.make("math:GSM8K")


def test_unknown_backend_is_named():
    with pytest.raises(rock_envs.EnvArgumentError, match="'nowhere'"):
        rock_envs.make("CartPole-v1", backend="nowhere")


def test_unseeded_resets_after_a_seeded_one_repeat_too():
    """GEM's Sokoban draws an unseeded room from OS entropy; rock-envs derives those seeds instead."""

    def episodes(seed):
        env = rock_envs.make(SOKOBAN)
        boards = [env.reset(seed=seed)[1]["suffix"]]
        boards += [env.reset()[1]["suffix"] for _ in range(3)]
        return boards

    first = episodes(11)
    assert first == episodes(11)
    assert len(set(first)) > 1  # the episodes differ from each other


def test_the_random_module_is_given_back_on_close():
    import random

    env = rock_envs.make(SOKOBAN)
    env.reset(seed=1)
    assert random.choice.__self__ is not random._inst  # the env's own generator while it runs
    env.close()
    assert random.choice.__self__ is random._inst
