"""RockVecEnv as SB3's own VecEnvs behave, Dict observations through SB3, and gem.make_vec over rock-envs."""

from __future__ import annotations

import sys
from typing import Any

import cloudpickle
import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytest.importorskip("stable_baselines3")
from stable_baselines3.common.monitor import Monitor  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize  # noqa: E402

from rock_envs.integrations.sb3 import RockVecEnv  # noqa: E402

BACKENDS = ["local", "subprocess"]


class Counter(gymnasium.Env):
    observation_space = spaces.Dict({"x": spaces.Box(-10, 10, (2,), np.float32), "k": spaces.Discrete(20)})
    action_space = spaces.Discrete(2)

    def __init__(self) -> None:
        self.calls = 0
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def _obs(self) -> dict[str, Any]:
        return {"x": np.full(2, self.t, np.float32), "k": self.t}

    def step(self, action: int):
        self.t += 1
        return self._obs(), 1.0, self.t >= 3, False, {}

    def bump(self, by: int = 1) -> int:
        self.calls += by
        return self.calls


def _pair(backend: str, wrap: Any = None) -> tuple[RockVecEnv, DummyVecEnv]:
    fns = [(lambda: wrap(Counter())) if wrap else Counter for _ in range(3)]
    return RockVecEnv(fns, num_envs=3, backend=backend), DummyVecEnv(fns)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dict_observations_and_terminal_observation_as_dummy_vec_env(backend):
    ours, theirs = _pair(backend)
    try:
        a, b = ours.reset(), theirs.reset()
        assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in b)
        for _ in range(4):
            ours.step_async(np.zeros(3, int))
            theirs.step_async(np.zeros(3, int))
            (oa, ra, da, ia), (ob, rb, db, ib) = ours.step_wait(), theirs.step_wait()
            assert all(np.array_equal(oa[k], ob[k]) for k in ob)
            assert ra.tolist() == rb.tolist() and da.tolist() == db.tolist()
            for info_a, info_b in zip(ia, ib):
                if "terminal_observation" in info_b:
                    final_a, final_b = info_a["terminal_observation"], info_b["terminal_observation"]
                    assert all(np.array_equal(final_a[k], final_b[k]) for k in final_b)
        # more actions than envs: the extra ones are ignored, as by SB3's own
        assert ours.step(np.zeros(5, int))[1].tolist() == theirs.step(np.zeros(5, int))[1].tolist()
        normalized = VecNormalize(ours, norm_obs_keys=["x"])  # VecNormalize on a Dict observation
        assert normalized.reset()["x"].shape == (3, 2)
    finally:
        ours.close()
        theirs.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_attributes_and_methods_with_indices_as_sb3_expects(backend):
    ours, theirs = _pair(backend)
    try:
        for venv in (ours, theirs):
            assert venv.has_attr("calls") and not venv.has_attr("no_such_attribute")
            assert venv.env_method("bump", 5, indices=[0]) == [5]
            assert venv.get_attr("calls") == [5, 0, 0]  # the other envs were left alone
            venv.set_attr("fresh", 7, indices=[1])  # an attribute the env does not have yet
            assert venv.get_attr("fresh", indices=[1]) == [7]
            assert venv.env_method("bump", indices=[2, 1]) == [1, 1]
            assert venv.get_attr("calls", indices=[-1]) == [1]  # counted from the end, as a list is
    finally:
        ours.close()
        theirs.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_env_is_wrapped_looks_at_the_envs_themselves(backend):
    ours, theirs = _pair(backend, wrap=Monitor)
    try:
        assert ours.env_is_wrapped(Monitor) == theirs.env_is_wrapped(Monitor) == [True] * 3
        assert ours.env_is_wrapped(gymnasium.wrappers.TimeLimit, indices=[0]) == [False]
    finally:
        ours.close()
        theirs.close()
    plain = RockVecEnv(Counter, num_envs=2, backend=backend)
    assert plain.env_is_wrapped(Monitor) == [False, False]
    plain.close()


def test_gem_make_vec_runs_over_rock_envs(monkeypatch):
    import gem
    from gem.envs import registration

    import rock_envs.integrations.gem as rgem

    monkeypatch.setattr(registration, "make", rgem.make)  # gem.make_vec calls make(id, seed=seed + i)
    venv = gem.make_vec(["game:GuessTheNumber-v0-easy"] * 2, seed=3)
    try:
        obs, _ = venv.reset()
        assert len(obs) == 2 and all(isinstance(o, str) for o in obs)
    finally:
        for env in venv.envs:  # GEM's SyncVectorEnv has no close of its own
            env.close()
    first = rgem.make("game:GuessTheNumber-v0-easy", seed=11)
    again = rgem.make("game:GuessTheNumber-v0-easy")
    assert first.reset()[0] == again.reset(seed=11)[0]  # the seed given to make seeds the first reset
    assert isinstance(first, gem.Env)


class OldStyle(gymnasium.Env):
    """A reset without `options` (older envs, SB3's own test envs): reached only with options."""

    observation_space = spaces.Discrete(2)
    action_space = spaces.Discrete(2)

    def reset(self, seed: int | None = None):  # type: ignore[override]
        self.got_options = None
        return 0, {}

    def step(self, action: int):
        return 0, 0.0, False, False, {}


class Optioned(OldStyle):
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # type: ignore[override]
        self.got_options = options
        return 0, {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_env_reset_options_and_envs_whose_reset_takes_none(backend):
    old = RockVecEnv(OldStyle, num_envs=2, backend=backend)
    old.reset()  # no options: the env is not handed any
    old.close()
    ours = RockVecEnv(Optioned, num_envs=3, backend=backend)
    try:
        options = [{"a": 1}, None, {"b": 2}]
        ours.set_options(options)
        ours.reset()
        assert ours.get_attr("got_options") == options  # each env its own, as DummyVecEnv
        ours.reset()
        assert ours.get_attr("got_options") == [None] * 3  # options are used once
    finally:
        ours.close()


def test_gems_async_vector_env_with_wrappers_over_worker_envs(monkeypatch):
    """What GEM's own tests/test_env/test_game.py drives (it imports a helper the released gem-llm lacks)."""
    import gem
    from gem.envs import registration
    from gem.wrappers.wrapper_factory import WRAPPER_FACTORY

    import rock_envs.integrations.gem as rgem

    monkeypatch.setattr(registration, "make", lambda env_id, **kw: rgem.make(env_id, backend="subprocess", **kw))
    ids = ["game:GuessTheNumber-v0-easy", "game:Sokoban-v0-easy", "game:Game2048-v0-easy"]
    venv = gem.make_vec(ids, wrappers=[WRAPPER_FACTORY["concat"]], max_turns=3, async_mode=True)
    try:
        obs, _ = venv.reset()
        assert len(obs) == 3
        for _ in range(3):
            actions = [env.env.sample_random_action() for env in venv.envs]
            obs, rewards, terminated, truncated, _ = venv.step(actions)
            assert len(obs) == len(rewards) == 3
    finally:
        for env in venv.envs:
            env.close()


def test_dummy_vec_env_style_envs_on_the_local_backend():
    from rock_envs.integrations.sb3 import RockVecEnv

    venv = RockVecEnv("CartPole-v1", 2, backend="local")
    try:
        assert len(venv.envs) == 2 and venv.envs[0].unwrapped.spec.id == "CartPole-v1"
    finally:
        venv.close()
