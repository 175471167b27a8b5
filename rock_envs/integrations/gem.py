"""GEM: rock-envs envs in loops written for GEM, under GEM's own wrappers.

    import rock_envs.integrations.gem as rgem

    env = rgem.make("game:Sokoban-v0-easy", wrappers="concat,episode_tracking")  # like gem.make + wrappers
    env = rgem.make("game:Sokoban-v0-easy", backend="subprocess")                # the env in a worker process

`make` takes what `gem.make` takes (an id and the env's kwargs) plus `backend` and `wrappers` (GEM
wrapper names from `gem.wrappers.wrapper_factory.WRAPPER_FACTORY`, comma-separated, or wrapper
callables, applied in order). The env it returns is a `gem.Env`: GEM code calls `reset(seed)` with a
positional seed (e.g. `EpisodeTrackingWrapper`), which `GemFacing` passes on as Gymnasium's keyword.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import gem
from gem.wrappers.wrapper_factory import WRAPPER_FACTORY

import rock_envs
from rock_envs.backends import BackendName
from rock_envs.core.errors import EnvArgumentError
from rock_envs.integrations.forwarding import ForwardsToRockEnv


class GemFacing(ForwardsToRockEnv, gem.Env):
    """A rock-envs env with GEM's face: `reset(seed=None)` positional or keyword, `sample_random_action()`."""

    def __init__(self, rock_env: Any, seed: Optional[int] = None):
        super().__init__()
        self.rock_env = rock_env
        self.env_id = getattr(getattr(rock_env, "spec", None), "id", None)
        self._first_seed = seed  # `gem.make(id, seed=s)`: the first reset without a seed uses it

    def reset(self, seed: Optional[int] = None, **kwargs: Any):
        if seed is None:
            seed, self._first_seed = self._first_seed, None
        else:
            self._first_seed = None
        return self.rock_env.reset(seed=seed, **kwargs)

    def sample_random_action(self) -> Any:
        return self.rock_env.sample_random_action()


def wrap(env: Any, wrappers: str | Sequence[Callable[[Any], Any]] | None) -> Any:
    """Apply GEM wrappers (names of `WRAPPER_FACTORY`, comma-separated, or callables) in order."""
    if not wrappers:
        return env
    fns = wrappers.split(",") if isinstance(wrappers, str) else list(wrappers)
    for fn in fns:
        if isinstance(fn, str):
            if fn not in WRAPPER_FACTORY:
                raise EnvArgumentError(
                    f"`rock_envs.integrations.gem.make(wrappers=...)`: unknown GEM wrapper {fn!r}; "
                    f"expected names from {sorted(WRAPPER_FACTORY)}."
                )
            fn = WRAPPER_FACTORY[fn]
        env = fn(env)
    return env


def make(
    env_id: str,
    *,
    backend: BackendName = "local",
    wrappers: str | Sequence[Callable[[Any], Any]] | None = None,
    seed: Optional[int] = None,
    **kwargs: Any,
) -> gem.Env:
    """`gem.make` for every rock-envs id, on any backend, optionally wrapped with GEM wrappers.

    `seed` (which `gem.make_vec` passes, `seed + i` for env i) seeds the first reset that names none."""
    return wrap(GemFacing(rock_envs.make(env_id, backend=backend, **kwargs), seed=seed), wrappers)


__all__ = ["GemFacing", "make", "wrap"]
