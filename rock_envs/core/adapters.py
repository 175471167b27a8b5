"""Adapters that give GEM and Gymnasium envs the rock-envs face (see `rock_envs.core.env`)."""

from __future__ import annotations

import contextvars
import inspect
import random
import threading
import weakref
from typing import Any, SupportsFloat

import gymnasium

from rock_envs.core.env import Env
from rock_envs.core.errors import EnvClosedError
from rock_envs.core.spaces import AnyText


class GymnasiumEnv(gymnasium.Wrapper, Env):
    """A Gymnasium env with the rock-envs spec attached.

    `step` and `reset` are bound straight to the inner env's methods (as instance attributes), so
    going through rock-envs costs no extra Python call per step.
    """

    def __init__(self, env: gymnasium.Env, spec: Any = None):
        super().__init__(env)
        self._rock_spec = spec
        self.step = env.step  # type: ignore[method-assign]
        self.reset = env.reset  # type: ignore[method-assign]
        self.closed = False

    def close(self) -> None:
        self.closed = True
        super().close()

    @property
    def spec(self) -> Any:
        return self._rock_spec

    @spec.setter
    def spec(self, value: Any) -> None:
        self._rock_spec = value


# GEM envs draw from Python's global `random` (`random.choice(...)`; GEM's reset seeds it with
# `random.seed`). Many envs share a process, so each GemEnv has its own `random.Random` and, while it
# runs, the `random` module's functions are that generator's bound methods. Swapping a table of
# bound methods costs about a microsecond, and only when another env ran last; a single env in a
# loop pays nothing. (numpy's global generator is not isolated; GEM's games do not draw from it.)
_RANDOM_FUNCTIONS = tuple(
    name
    for name in (
        "seed",
        "random",
        "uniform",
        "triangular",
        "randint",
        "choice",
        "randrange",
        "sample",
        "shuffle",
        "choices",
        "normalvariate",
        "lognormvariate",
        "expovariate",
        "vonmisesvariate",
        "gammavariate",
        "gauss",
        "betavariate",
        "paretovariate",
        "weibullvariate",
        "getstate",
        "setstate",
        "getrandbits",
        "randbytes",
        "binomialvariate",
    )
    if hasattr(random, name)
)
_ORIGINAL_RANDOM = {name: getattr(random, name) for name in _RANDOM_FUNCTIONS}
_random_owner: weakref.ref[GemEnv] | None = None


# A worker that steps envs at once (threads, or an asyncio loop) cannot swap the table while an
# env runs: there the `random` module's functions look up the generator of the env running in the
# current thread or asyncio task (a context variable), and fall back to Python's own generator.
_owner_rng: contextvars.ContextVar[random.Random | None] = contextvars.ContextVar("rock_envs_random", default=None)
_concurrent = False
_concurrent_lock = threading.Lock()


def _dispatching(name: str) -> Any:
    fallback = _ORIGINAL_RANDOM[name]

    def dispatch(*args: Any, **kwargs: Any) -> Any:
        rng = _owner_rng.get()
        return fallback(*args, **kwargs) if rng is None else getattr(rng, name)(*args, **kwargs)

    dispatch.__name__ = dispatch.__qualname__ = name
    return dispatch


def concurrent_random() -> None:
    """From now on in this process, GEM envs may run at once: each thread or asyncio task draws from
    the generator of the env it is running (set by `GemEnv.own_random`). Idempotent."""
    global _concurrent, _random_owner
    with _concurrent_lock:
        if _concurrent:
            return
        random.__dict__.update({name: _dispatching(name) for name in _RANDOM_FUNCTIONS})
        _random_owner, _concurrent = None, True


def _release_random(env: GemEnv) -> None:
    """Give the `random` module its own functions back if `env` holds it."""
    global _random_owner
    if _concurrent:
        return
    if _random_owner is not None and _random_owner() is env:
        random.__dict__.update(_ORIGINAL_RANDOM)
        _random_owner = None


class GemEnv(Env[str, str]):
    """A GEM env: text observations and actions, permissive `AnyText` spaces, isolated RNG."""

    metadata = {"render_modes": []}

    def __init__(self, env: Any, spec: Any = None):
        self._env = env
        self.spec = spec
        self.observation_space = AnyText()
        self.action_space = AnyText()
        self._rng = random.Random()
        self._random_functions = {name: getattr(self._rng, name) for name in _RANDOM_FUNCTIONS}
        self._seeds: random.Random | None = None  # after a seeded reset: where unseeded resets get theirs
        self.episode_seed: int | None = None
        """The seed the current episode was reset with: given, or drawn from the env's own stream."""
        self._reset_takes_options = "options" in inspect.signature(env.reset).parameters
        self._closed = False

    def own_random(self) -> None:
        """Make the `random` module this env's own generator: done before every call into the GEM env
        (reset, step, and a worker's `call` or `apply` on it)."""
        global _random_owner
        if _concurrent:
            _owner_rng.set(self._rng)
            return
        if _random_owner is not None and _random_owner() is self:
            return
        random.__dict__.update(self._random_functions)
        _random_owner = weakref.ref(self, lambda _: random.__dict__.update(_ORIGINAL_RANDOM))

    def reset(self, seed: int | None = None, *, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        # `seed` may come positionally: GEM's own wrappers call `env.reset(seed)`.
        if self._closed:
            raise EnvClosedError(f"`reset` on {self._name()} after `close()`; make a new env with `rock_envs.make`.")
        self.own_random()
        if seed is not None:
            self._seeds = random.Random(seed)
        elif self._seeds is not None:
            # Some GEM games draw an unseeded reset from OS entropy: after one seeded reset, every
            # later episode gets its seed from this env's own stream, so trajectories repeat.
            seed = self._seeds.randrange(2**31)
        self.episode_seed = seed
        if self._reset_takes_options:
            return self._env.reset(seed=seed, options=options)
        return self._env.reset(seed=seed)

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._closed:
            raise EnvClosedError(f"`step` on {self._name()} after `close()`; make a new env with `rock_envs.make`.")
        self.own_random()
        return self._env.step(action)

    def sample_random_action(self) -> str:
        self.own_random()
        return self._env.sample_random_action()

    @property
    def unwrapped(self) -> Any:
        return self._env.unwrapped

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _release_random(self)
        close = getattr(self._env, "close", None)
        if close is not None:
            close()

    def _name(self) -> str:
        return repr(self.spec.id) if self.spec is not None else type(self._env).__name__

    def __getattr__(self, name: str) -> Any:
        # Env-specific attributes (Sokoban's `room_state`, a game's `max_turns`) stay reachable.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._env, name)

    def __repr__(self) -> str:
        return f"<GemEnv {self._name()}>"


def user_env(env: Any) -> Any:
    """The env a factory or entry point made, inside rock-envs' adapter (`env` itself if none)."""
    if isinstance(env, GymnasiumEnv):
        return env.env
    if isinstance(env, GemEnv):
        return env._env
    return env
