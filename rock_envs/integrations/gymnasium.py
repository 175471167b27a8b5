"""rock-envs ids in Gymnasium's registry, under the `rock/` namespace.

    import rock_envs.integrations.gymnasium   # registers every known rock-envs id
    env = gymnasium.make("rock/game-Sokoban-v0-easy")
    venv = gymnasium.make_vec("rock/game-Sokoban-v0-easy", num_envs=64, backend="subprocess")

The mapping: Gymnasium reads `module:Name` in an id as "import `module` first", so a rock-envs id's
`category:` becomes `category-` and the whole id goes under the `rock` namespace:

| rock-envs id             | Gymnasium id                   |
|--------------------------|--------------------------------|
| `game:Sokoban-v0-easy`   | `rock/game-Sokoban-v0-easy`    |
| `rg:basic_arithmetic`    | `rock/rg-basic_arithmetic`     |
| `CartPole-v1`            | `rock/CartPole-v1`             |

`gym_id(rock_id)` and `rock_id(gym_id)` convert both ways (`rock_id` through the table built at
registration). `gymnasium.make` builds the env in this process (`rock_envs.make`, backend "local");
`gymnasium.make_vec` uses rock-envs' own vector env as the `vector_entry_point` (the default mode
for these ids), so its keywords (`backend`, `num_workers`, `autoreset_mode`, ...) pass through;
`vectorization_mode="sync"`/`"async"` give Gymnasium's own vector envs of rock-envs envs.

Ids registered after import (`rock_envs.register`, new plugins) join with another `register_all()`.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium

import rock_envs
from rock_envs.core.errors import EnvArgumentError
from rock_envs.integrations.forwarding import ForwardsToRockEnv

NAMESPACE = "rock"
_to_rock: dict[str, str] = {}


def gym_id(rock_env_id: str) -> str:
    """The Gymnasium id of a rock-envs id: `game:Sokoban-v0-easy` -> `rock/game-Sokoban-v0-easy`."""
    return f"{NAMESPACE}/{rock_env_id.replace(':', '-', 1)}"


def rock_id(gymnasium_id: str) -> str:
    """The rock-envs id behind a `rock/...` Gymnasium id registered by `register_all`."""
    try:
        return _to_rock[gymnasium_id]
    except KeyError:
        raise EnvArgumentError(
            f"`rock_id({gymnasium_id!r})`: not a registered `{NAMESPACE}/` id; "
            "call `rock_envs.integrations.gymnasium.register_all()` after registering "
            "new rock-envs ids."
        ) from None


class GymnasiumFacing(ForwardsToRockEnv, gymnasium.Env):
    """A rock-envs env as `gymnasium.make` expects it: `spec` is Gymnasium's, `unwrapped` is this object.

    rock-envs envs carry their own `spec` (a rock-envs `EnvSpec`), which `gymnasium.make` would read
    as its own. The rock-envs env is `rock_env`; other attributes are read from it.
    """

    def __init__(self, rock_env: Any):
        self.rock_env = rock_env
        self.observation_space = rock_env.observation_space
        self.action_space = rock_env.action_space
        self.metadata = dict(getattr(rock_env, "metadata", {}) or {})
        self.render_mode = getattr(rock_env, "render_mode", None)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)  # this object's `np_random`, for wrappers; the env seeds its own
        return self.rock_env.reset(seed=seed, options=options)

    def render(self) -> Any:
        return self.rock_env.render()


def make_env(rock_env_id: str, **kwargs: Any) -> GymnasiumFacing:
    """Gymnasium's `entry_point` for a `rock/` id: the env built by `rock_envs.make`, facing Gymnasium."""
    return GymnasiumFacing(rock_envs.make(rock_env_id, **kwargs))


def make_vector_env(rock_env_id: str, num_envs: int = 1, **kwargs: Any) -> Any:
    """Gymnasium's `vector_entry_point` for a `rock/` id: a rock-envs vector env (default backend subprocess)."""
    kwargs.pop("max_episode_steps", None)  # Gymnasium adds the spec's; rock-envs envs carry their own limit
    return rock_envs.make_vec(rock_env_id, num_envs, **kwargs)


def register_all(pattern: str = "*") -> list[str]:
    """Register every rock-envs id matching `pattern` as `rock/...`; returns the new Gymnasium ids."""
    added = []
    for spec in rock_envs.list_envs(pattern):
        gid = gym_id(spec.id)
        if gid in gymnasium.registry or "/" in spec.id:
            continue
        try:
            gymnasium.register(
                gid,
                entry_point=functools.partial(make_env, spec.id),
                vector_entry_point=functools.partial(make_vector_env, spec.id),
                disable_env_checker=spec.source != "gymnasium",
            )
        except gymnasium.error.Error:  # an id Gymnasium cannot parse: leave it out
            continue
        _to_rock[gid] = spec.id
        added.append(gid)
    return added


register_all()

__all__ = ["NAMESPACE", "GymnasiumFacing", "gym_id", "make_env", "make_vector_env", "register_all", "rock_id"]
