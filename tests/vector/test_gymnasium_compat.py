"""rock-envs as a drop-in for Gymnasium's vector envs: the same results, layouts and errors as
`SyncVectorEnv` on every backend (each case here once differed)."""

from __future__ import annotations

import multiprocessing
import sys
import warnings
from typing import Any

import cloudpickle
import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.error import AlreadyPendingCallError, ClosedEnvironmentError, NoAsyncCallError
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import rock_envs

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import the tests


class DictEnv(gymnasium.Env):
    """Dict and Tuple observations; infos of every kind Gymnasium batches; ends after `length` steps."""

    observation_space = spaces.Dict(
        {
            "pos": spaces.Box(-1.0, 1.0, (2,), np.float32),
            "count": spaces.Discrete(100),
            "pair": spaces.Tuple((spaces.Discrete(3), spaces.Box(0.0, 1.0, (1,), np.float64))),
        }
    )
    action_space = spaces.Discrete(2)

    def __init__(self, length: int = 3):
        self.length = length
        self.t = 0

    def _obs(self) -> dict[str, Any]:
        r = self.np_random
        pos = r.uniform(-1, 1, 2).astype(np.float32)
        return {"pos": pos, "count": self.t, "pair": (int(r.integers(3)), r.uniform(0, 1, 1))}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {"start": np.float32(1.5)}

    def step(self, action: int):
        self.t += 1
        info = {"f32": np.float32(self.t) / 2, "vec": np.arange(3) * self.t, "name": f"t{self.t}", "n": self.t}
        if self.t % 2:
            info["nested"] = {"odd": True}
        return self._obs(), float(action), self.t >= self.length, False, info


class CountEnv(gymnasium.Env):
    """Discrete observations; `max_count` is not an attribute until someone sets it."""

    observation_space = spaces.Discrete(10)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.count = 0
        return self.count, {}

    def step(self, action: int):
        self.count += 1
        return self.count, 1.0, self.count >= self.max_count, False, {}  # type: ignore[attr-defined]


class RecordingEnv(gymnasium.Env):
    """Records the actions it got, whatever they were."""

    observation_space = spaces.Discrete(2)
    action_space = spaces.Discrete(2)

    def __init__(self, tag: str = ""):
        self.tag = tag
        self.got: list[Any] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action: Any):
        self.got.append(action)
        return 0, 0.0, False, False, {}


class Boom(Exception):
    """An env's own exception type."""


class FailingEnv(gymnasium.Env):
    observation_space = spaces.Discrete(2)
    action_space = spaces.Discrete(2)

    def __init__(self, where: str = "step"):
        if where == "init":
            raise gymnasium.error.DeprecatedEnv("this env is deprecated")
        self.where = where

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if self.where == "reset":
            raise ValueError("bad reset")
        return 0, {}

    def step(self, action: int):
        raise Boom("boom in step")


def _assert_same(ours: Any, theirs: Any, path: str = "") -> None:
    """Equal values with the same container types, dtypes and shapes (object arrays compared item by item)."""
    assert type(ours) is type(theirs), f"{path}: {type(ours).__name__} != {type(theirs).__name__}"
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs), f"{path}: keys {list(ours)} != {list(theirs)}"
        for key in theirs:
            _assert_same(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, tuple):
        assert len(ours) == len(theirs), path
        for k, (a, b) in enumerate(zip(ours, theirs)):
            _assert_same(a, b, f"{path}[{k}]")
    elif isinstance(theirs, np.ndarray):
        assert (ours.dtype, ours.shape) == (theirs.dtype, theirs.shape), f"{path}: {ours.dtype}{ours.shape}"
        if theirs.dtype == object:
            for k in range(len(theirs)):
                _assert_same(ours[k], theirs[k], f"{path}[{k}]")
        else:
            np.testing.assert_array_equal(ours, theirs, err_msg=path)
    else:
        assert ours == theirs, f"{path}: {ours!r} != {theirs!r}"


@pytest.mark.parametrize("mode", ["next_step", "same_step", "disabled"])
def test_dict_observations_and_infos_are_laid_out_as_gymnasium_lays_them_out(make, mode):
    n = 3
    ours = make(lambda: DictEnv(), n, autoreset_mode=mode)
    theirs = SyncVectorEnv([lambda: DictEnv() for _ in range(n)], autoreset_mode=AutoresetMode(_value(mode)))
    assert ours.observation_space == theirs.observation_space
    _assert_same(ours.reset(seed=7), theirs.reset(seed=7), "reset")
    for t in range(5):
        actions = np.array([t % 2, 1, 0])
        got, want = ours.step(actions), theirs.step(actions)
        assert got[0] in ours.observation_space
        _assert_same(got, want, f"step {t}")
        done = got[2] | got[3]
        if mode == "disabled" and done.any():  # a done env must be reset before it steps again
            _assert_same(ours.reset(options={"reset_mask": done}), theirs.reset(options={"reset_mask": done}))
    theirs.close()


def _value(mode: str) -> str:
    return {"next_step": "NextStep", "same_step": "SameStep", "disabled": "Disabled"}[mode]


def test_recv_gives_dict_rows_of_the_envs_it_returns(make):
    venv = make(lambda: DictEnv(length=50), 4, batch_size=2)
    venv.reset(seed=0)
    venv.send([0, 0, 0, 0])
    ids, obs, *_ = venv.recv()
    assert len(ids) == 2 and obs["pos"].shape == (2, 2) and obs["pair"][1].shape == (2, 1)
    assert obs["count"].tolist() == [1, 1]


def test_same_step_final_obs_is_an_object_array_of_raw_observations(make):
    venv = make(lambda: CountEnv(), 3, autoreset_mode="same_step")
    venv.set_attr("max_count", [1, 3, 3])
    venv.reset(seed=0)
    _, _, terms, _, infos = venv.step([0, 0, 0])
    assert terms.tolist() == [True, False, False]
    _assert_same(infos["final_obs"], np.array([1, None, None], dtype=object))
    assert infos["_final_obs"].tolist() == [True, False, False]


def test_set_attr_of_a_new_attribute_reaches_the_env(make):
    venv = make(lambda: CountEnv(), 2, on_error="raise")
    venv.set_attr("max_count", [2, 3])
    assert venv.get_attr("max_count") == (2, 3)
    venv.reset(seed=0)
    assert venv.step([0, 0])[2].tolist() == [False, False]
    assert venv.step([0, 0])[2].tolist() == [True, False]
    venv.set_attr("max_count", 9, env_ids=[1])
    assert venv.get_attr("max_count") == (2, 9)


class PaintedEnv(RecordingEnv):
    """Renders an rgb frame that shows how many steps it took."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode: str | None = None):
        super().__init__()
        self.render_mode = render_mode

    def render(self) -> np.ndarray:
        return np.full((4, 6, 3), len(self.got), dtype=np.uint8)


def test_render_gives_every_envs_frame(make):
    venv = make(lambda: PaintedEnv(render_mode="rgb_array"), 2)
    assert venv.render_mode == "rgb_array"
    venv.reset(seed=0)
    venv.step([0, 0])
    frames = venv.render()
    assert isinstance(frames, tuple) and len(frames) == 2
    assert all(f.shape == (4, 6, 3) and f.dtype == np.uint8 and (f == 1).all() for f in frames)


def test_np_random_seed_is_every_envs_seed(make):
    venv = make("CartPole-v1", 3)
    venv.reset(seed=42)
    assert venv.np_random_seed == (42, 43, 44)
    assert len(venv.np_random) == 3


def test_call_order_and_closed_errors_are_gymnasiums_too(make):
    venv = make("CartPole-v1", 2)
    venv.reset(seed=0)
    with pytest.raises(NoAsyncCallError) as caught:
        venv.step_wait()
    assert isinstance(caught.value, rock_envs.CallOrderError) and caught.value.name == "step_wait"
    venv.step_async([0, 0])
    with pytest.raises(AlreadyPendingCallError):
        venv.step_async([0, 0])
    with pytest.raises(AlreadyPendingCallError):
        venv.reset()
    venv.step_wait()
    venv.close()
    with pytest.raises(ClosedEnvironmentError):
        venv.step([0, 0])


def test_a_timeout_is_multiprocessings_timeout_error_too():
    error = rock_envs.WorkerTimeoutError("late", [1])
    assert isinstance(error, multiprocessing.TimeoutError) and isinstance(error, TimeoutError)


def test_env_exceptions_keep_their_type_and_remote_traceback(make):
    with pytest.raises(gymnasium.error.DeprecatedEnv, match="this env is deprecated") as caught:
        make(lambda: FailingEnv("init"), 2)
    assert isinstance(caught.value, rock_envs.RemoteError)
    venv = make(lambda: FailingEnv("reset"), 2)
    with pytest.raises(ValueError, match="bad reset"):
        venv.reset(seed=0)
    venv = make(lambda: FailingEnv("step"), 2, on_error="raise")
    venv.reset(seed=0)
    with pytest.raises(Boom) as caught:
        venv.step([0, 0])
    assert isinstance(caught.value, rock_envs.RemoteError)
    assert ", in step\n" in caught.value.remote_traceback  # the env's own frame (its source: where the file is)
    assert caught.value.remote_traceback.rstrip().endswith("Boom: boom in step")


class Sealed(Exception):
    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise TypeError("Sealed cannot be subclassed")


def test_an_unloaded_or_unsubclassable_remote_type_is_a_plain_remote_error():
    from rock_envs.core.errors import remote_error

    assert type(remote_error("Gone", "m", "tb", type_module="no.such.module")) is rock_envs.RemoteError
    assert type(remote_error("int", "m", "tb", type_module="builtins")) is rock_envs.RemoteError  # no exception
    assert type(remote_error("Sealed", "m", "tb", type_module=__name__)) is rock_envs.RemoteError
    assert isinstance(remote_error("KeyError", "m", "tb", type_module="builtins"), KeyError)
    assert str(remote_error("KeyError", "m", "tb", type_module="builtins")).startswith("KeyError in worker: m")


def test_actions_reach_the_env_unchecked_unless_asked(make):
    venv = make(lambda: RecordingEnv(), 2)
    venv.reset(seed=0)
    venv.step([5, 1])  # outside Discrete(2): Gymnasium passes it on, so does rock-envs
    assert [got[-1] for got in venv.get_attr("got")] == [5, 1]
    checked = make(lambda: RecordingEnv(), 2, check_actions=True)
    checked.reset(seed=0)
    with pytest.raises(rock_envs.ActionError, match="outside Discrete"):
        checked.step([5, 1])


def test_gymnasiums_autoreset_values_are_accepted(make):
    venv = make("CartPole-v1", 2, autoreset_mode="SameStep")
    assert venv.autoreset_mode is AutoresetMode.SAME_STEP


def test_single_env_on_a_backend_passes_gymnasiums_check_env(backend):
    from gymnasium.utils.env_checker import check_env

    env = rock_envs.make("CartPole-v1", backend=backend.name, **_single_options(backend))
    try:
        with warnings.catch_warnings():  # its advice (CartPole's infinite bounds, a wrapped env) is not a failure
            warnings.simplefilter("ignore", UserWarning)
            check_env(env, skip_render_check=True)
    finally:
        env.close()


def _single_options(backend: Any) -> dict[str, Any]:
    return {k: v for k, v in backend.kwargs.items() if k != "num_workers"}


def test_one_shared_env_instance_is_refused(make):
    env = CountEnv()
    with pytest.raises(rock_envs.EnvArgumentError, match="the same env object for several envs"):
        make(lambda: env, 2, num_workers=1)


def test_a_list_of_env_functions_makes_env_i_from_function_i(make):
    fns = [lambda tag=tag: RecordingEnv(tag) for tag in ("a", "b", "c")]
    venv = make(fns, 3)
    assert venv.num_envs == 3 and venv.get_attr("tag") == ("a", "b", "c")
    with pytest.raises(rock_envs.EnvArgumentError, match="num_envs=2 but 3 env functions"):
        rock_envs.make_vec(fns, 2, backend="local")


def test_envs_with_different_spaces_are_refused(make):
    fns = [lambda: RecordingEnv(), lambda: CountEnv(), lambda: RecordingEnv()]
    with pytest.raises(rock_envs.SpaceMismatchError, match="observation spaces are not equivalent") as caught:
        make(fns, 3)
    assert isinstance(caught.value, RuntimeError)  # as Gymnasium raises
    assert "observation_mode='different'" in str(caught.value)  # the way out, named


class BoundedEnv(gymnasium.Env):
    """A Box observation whose upper bound is the env's own; the obs is the bound times a draw."""

    action_space = spaces.Discrete(2)

    def __init__(self, high: float, shape: tuple[int, ...] = (3,), action_space: Any = None):
        self.high, self.shape = high, shape
        self.observation_space = spaces.Box(0.0, high, shape, np.float32)
        self.action_space = action_space or self.action_space

    def _obs(self) -> np.ndarray:
        return self.np_random.uniform(0.0, self.high, self.shape).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action: int):
        return self._obs(), 0.0, False, False, {}


@pytest.mark.parametrize("mode", ["different", "tuple"])
def test_observation_mode_different_batches_each_envs_bounds(make, mode):
    """Gymnasium's `observation_mode`: spaces of one shape and dtype with other bounds are batched
    with `batch_differing_spaces`, across workers too; `single_observation_space` is env 0's."""
    from gymnasium.vector.utils import batch_differing_spaces

    highs = [1.0, 2.0, 3.0, 4.0]
    own = [spaces.Box(0.0, h, (3,), np.float32) for h in highs]
    batched = batch_differing_spaces(own)
    observation_mode = "different" if mode == "different" else (batched, own[0])
    venv = make([lambda h=h: BoundedEnv(h) for h in highs], 4, observation_mode=observation_mode)
    assert venv.observation_space == batched and venv.single_observation_space == own[0]
    assert venv.observation_mode == observation_mode
    reference = SyncVectorEnv([lambda h=h: BoundedEnv(h) for h in highs], observation_mode="different")
    for seed in (0, 7):
        obs, _ = venv.reset(seed=seed)
        expected, _ = reference.reset(seed=seed)
        np.testing.assert_array_equal(obs, expected)
        assert obs in venv.observation_space and obs[3].max() > 1.0  # env 3's bound, not env 0's
    np.testing.assert_array_equal(venv.step(np.zeros(4, int))[0], reference.step(np.zeros(4, int))[0])
    reference.close()


def test_observation_mode_errors_name_what_was_wrong(make):
    with pytest.raises(ValueError, match="Invalid `observation_mode`.*actual got invalid"):
        rock_envs.make_vec("CartPole-v1", 2, backend="local", observation_mode="invalid")
    with pytest.raises(TypeError, match="must hold two Spaces"):
        rock_envs.make_vec("CartPole-v1", 2, backend="local", observation_mode=(spaces.Discrete(2), 3))
    shapes = [lambda n=n: BoundedEnv(1.0, (n,)) for n in (1, 2, 3, 4)]
    with pytest.raises(rock_envs.SpaceMismatchError, match="must share a shape and dtype"):
        make(shapes, 4, observation_mode="different")
    given = (spaces.Box(0, 4, (4, 5)), spaces.Box(0, 4, (5,)))
    with pytest.raises(rock_envs.SpaceMismatchError, match="env 0's observation space .* does not share"):
        make([lambda: BoundedEnv(1.0)] * 4, 4, observation_mode=given)
    actions = [lambda a=a: BoundedEnv(1.0, action_space=spaces.Discrete(a)) for a in (2, 3, 2, 2)]
    with pytest.raises(rock_envs.SpaceMismatchError, match="same action_space"):
        make(actions, 4, observation_mode="different")  # action spaces must still be equal


def test_bad_values_are_value_errors_and_a_single_action_a_type_error(make):
    venv = make("CartPole-v1", 3, autoreset_mode="disabled")
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"`options\['reset_mask'\]` must have shape `\(3,\)`, got \(1,\)"):
        venv.reset(options={"reset_mask": np.array([True])})
    with pytest.raises(ValueError, match="at least one True value"):
        venv.reset(options={"reset_mask": np.zeros(3, bool)})
    with pytest.raises(TypeError, match=r"must have `dtype=np.bool_`, got int64"):
        venv.reset(options={"reset_mask": np.array([1, 1, 0])})
    with pytest.raises(ValueError, match="expected 3 actions"):
        venv.step([0, 1])
    with pytest.raises(TypeError, match="got a single int"):
        venv.step(0)


def test_a_factory_from_the_callers_import_path_loads_in_the_workers(backend, make, tmp_path, monkeypatch):
    if backend.name in ("docker", "remote"):
        pytest.skip(f"{backend.name} workers see their own filesystem: pickle such factories by value")
    (tmp_path / "caller_only_envs.py").write_text(
        "import gymnasium\n"
        "class Tiny(gymnasium.Env):\n"
        "    observation_space = gymnasium.spaces.Discrete(2)\n"
        "    action_space = gymnasium.spaces.Discrete(2)\n"
        "    def reset(self, *, seed=None, options=None):\n"
        "        return 1, {}\n"
        "    def step(self, action):\n"
        "        return 0, 0.0, False, False, {}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # as pytest and scripts put their own folder there
    import caller_only_envs

    venv = make(caller_only_envs.Tiny, 2)  # pickled by reference: the workers import it
    assert venv.reset(seed=0)[0].tolist() == [1, 1]


class OptionsRequiredEnv(gymnasium.Env):
    """A reset that requires `options` as Gymnasium's own test envs do (`reset(self, seed, options)`)."""

    observation_space = spaces.Discrete(5)
    action_space = spaces.Discrete(2)

    def reset(self, seed, options):  # type: ignore[override]
        super().reset(seed=seed)
        return int(self.np_random.integers(5)), {"had_options": options is not None}

    def step(self, action: int):
        return 0, 0.0, True, False, {}


def test_a_reset_that_requires_options_gets_them_even_when_none(make):
    venv = make(lambda: OptionsRequiredEnv(), 2)
    obs, info = venv.reset(seed=3)
    expected, _ = SyncVectorEnv([lambda: OptionsRequiredEnv()] * 2).reset(seed=3)
    np.testing.assert_array_equal(obs, expected)
    assert list(info["had_options"]) == [False, False]
    _, info = venv.reset(seed=3, options={"x": 1})
    assert list(info["had_options"]) == [True, True]
