"""Adapters that give GEM and Gymnasium envs the rock-envs face (see `rock_envs.core.env`)."""

from __future__ import annotations

import inspect
import random
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

    @property
    def spec(self) -> Any:  # type: ignore[override]
        return self._rock_spec

    @spec.setter
    def spec(self, value: Any) -> None:
        self._rock_spec = value


# GEM envs draw from Python's global `random` (GEM's reset seeds it). Many envs share one process,
# so each GemEnv keeps its own copy of that state and swaps it in only when another env used it
# last: a single env in a loop pays nothing, interleaved envs pay one getstate/setstate each.
_random_owner: weakref.ref[GemEnv] | None = None


class GemEnv(Env[str, str]):
    """A GEM env: text observations and actions, permissive `AnyText` spaces, isolated RNG."""

    metadata = {"render_modes": []}

    def __init__(self, env: Any, spec: Any = None):
        self._env = env
        self.spec = spec
        self.observation_space = AnyText()
        self.action_space = AnyText()
        self._random_state = random.Random().getstate()
        self._reset_takes_options = "options" in inspect.signature(env.reset).parameters
        self._closed = False

    def _own_random(self) -> None:
        global _random_owner
        owner = _random_owner() if _random_owner is not None else None
        if owner is self:
            return
        if owner is not None:
            owner._random_state = random.getstate()
        random.setstate(self._random_state)
        _random_owner = weakref.ref(self)

    def reset(self, seed: int | None = None, *, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        # `seed` may come positionally: GEM's own wrappers call `env.reset(seed)`.
        if self._closed:
            raise EnvClosedError(f"`reset` on {self._name()} after `close()`; make a new env with `rock_envs.make`.")
        self._own_random()
        if self._reset_takes_options:
            return self._env.reset(seed=seed, options=options)
        return self._env.reset(seed=seed)

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._closed:
            raise EnvClosedError(f"`step` on {self._name()} after `close()`; make a new env with `rock_envs.make`.")
        self._own_random()
        return self._env.step(action)

    def sample_random_action(self) -> str:
        self._own_random()
        return self._env.sample_random_action()

    @property
    def unwrapped(self) -> Any:  # type: ignore[override]
        return self._env.unwrapped

    def close(self) -> None:
        global _random_owner
        if self._closed:
            return
        self._closed = True
        if _random_owner is not None and _random_owner() is self:
            _random_owner = None
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
