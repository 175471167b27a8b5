"""An env's own random state as plain data, and where an episode starts from.

Two kinds of env keep their randomness in different places:

- GEM envs draw from Python's `random`; rock-envs gives each `GemEnv` its own `random.Random`
  (`_rng`) and, after a seeded reset, a stream (`_seeds`) that seeds its later, unseeded resets;
- Gymnasium envs (and every other `gymnasium.Env`) draw from `unwrapped.np_random`, and
  `action_space.sample()` from the action space's own generator.

`get_state` / `set_state` read and write all of it as JSON-able data (lists and ints), which env
snapshots carry and trajectory records store. `episode_start` says how to start an episode again:
its seed where one is known (given, derived by GEM's seed stream, or drawn by Gymnasium from
entropy), else the generator state the unseeded reset continued from.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from rock_envs.core.adapters import GemEnv
from rock_envs.core.resets import call_reset


def generator_state(gen: np.random.Generator | None) -> dict[str, Any] | None:
    """A numpy generator's state (plain dicts and ints), or None for no generator."""
    return None if gen is None else dict(gen.bit_generator.state)


def generator_from(state: dict[str, Any] | None) -> np.random.Generator | None:
    """A numpy generator in `state` (as `generator_state` gave it)."""
    if state is None:
        return None
    bit_generator = getattr(np.random, str(state["bit_generator"]))()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _random_state(rng: random.Random | None) -> list[Any] | None:
    if rng is None:
        return None
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _random_from(state: list[Any] | None) -> random.Random | None:
    if state is None:
        return None
    rng = random.Random()
    rng.setstate((state[0], tuple(state[1]), state[2]))
    return rng


def _space_generator(env: Any) -> np.random.Generator | None:
    space = getattr(env, "action_space", None)
    return getattr(space, "_np_random", None)


def get_state(env: Any) -> dict[str, Any]:
    """Everything random about `env` that lives outside its own attributes, as JSON-able data."""
    if isinstance(env, GemEnv):
        return {"kind": "gem", "random": _random_state(env._rng), "seeds": _random_state(env._seeds)}
    inner = env.unwrapped
    return {
        "kind": "numpy",
        "np_random": generator_state(getattr(inner, "_np_random", None)),
        "np_random_seed": getattr(inner, "_np_random_seed", None),
        "action_space": generator_state(_space_generator(env)),
    }


def set_state(env: Any, state: dict[str, Any]) -> None:
    """Put `env`'s random state back to `state` (from `get_state` of an env of the same kind)."""
    if isinstance(env, GemEnv):
        if state.get("kind") != "gem":
            raise ValueError("a GEM env's random state was expected, got a Gymnasium env's")
        rng = _random_from(state["random"])
        assert rng is not None  # a GEM env always has its own generator
        env._rng.setstate(rng.getstate())  # in place: the `random` module's functions are its methods
        env._seeds = _random_from(state["seeds"])
        return
    if state.get("kind") != "numpy":
        raise ValueError("a Gymnasium env's random state was expected, got a GEM env's")
    inner = env.unwrapped
    inner._np_random = generator_from(state["np_random"])
    inner._np_random_seed = state["np_random_seed"]
    space = getattr(env, "action_space", None)
    if space is not None and state.get("action_space") is not None:
        space._np_random = generator_from(state["action_space"])


def before_reset(env: Any, seed: int | None) -> dict[str, Any] | None:
    """What an unseeded reset of `env` continues from (None where the episode will have a seed)."""
    if seed is not None or isinstance(env, GemEnv):
        return None  # GEM: an unseeded reset takes its seed from the env's stream (`episode_seed`)
    return generator_state(getattr(env.unwrapped, "_np_random", None))


def episode_start(env: Any, seed: int | None, options: dict[str, Any] | None, before: Any) -> dict[str, Any]:
    """How to start the episode `env` just began again: `{"seed", "options", "rng"}`.

    `seed` is the one given, or the one the env derived; `rng` (seed None) is the generator state
    an unseeded Gymnasium reset continued from. `seed` and `rng` both None: not reproducible."""
    rng = None
    if seed is None:
        if isinstance(env, GemEnv):
            seed = env.episode_seed
        elif before is not None:
            rng = before
        else:  # a first unseeded reset: Gymnasium drew a seed from entropy, and kept it
            inner = env.unwrapped
            if getattr(inner, "_np_random", None) is not None:
                seed = getattr(inner, "_np_random_seed", None)
    return {"seed": seed, "options": options or None, "rng": rng}


def reproducible(start: dict[str, Any]) -> bool:
    return start.get("seed") is not None or start.get("rng") is not None


def start_episode(env: Any, start: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Reset `env` so that it begins the episode `start` (from `episode_start`) describes."""
    seed, options = start.get("seed"), start.get("options")
    if start.get("rng") is not None:
        env.unwrapped._np_random = generator_from(start["rng"])
        seed = None
    return call_reset(env.reset, seed, options)
