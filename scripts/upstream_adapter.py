"""A pytest plugin that puts rock-envs where another project's test suite builds its vector envs.

Loaded by `scripts/upstream_suites.py` (`-p upstream_adapter`), never by rock-envs' own suite. It
reads two environment variables:

- ROCK_ENVS_UPSTREAM_SUITE: gymnasium, sb3 or gem;
- ROCK_ENVS_UPSTREAM_BACKEND: the rock-envs backend ("subprocess" stands in for Gymnasium's
  `AsyncVectorEnv` and SB3's `SubprocVecEnv`, "local" for `SyncVectorEnv` and `DummyVecEnv`), or
  "none" to run the suite against the real classes (its baseline).

Each stand-in is a subclass of the rock-envs class that takes the constructor arguments of the class
it replaces, so `isinstance` checks in the suite hold.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

SUITE = os.environ.get("ROCK_ENVS_UPSTREAM_SUITE", "gymnasium")
BACKEND = os.environ.get("ROCK_ENVS_UPSTREAM_BACKEND", "subprocess")


def _gymnasium() -> None:
    import gymnasium.vector
    from gymnasium.vector import AutoresetMode, async_vector_env, sync_vector_env

    import rock_envs
    from rock_envs import RockVectorEnv

    def build(cls: type, env_fns: Sequence[Callable[[], Any]], autoreset_mode: Any, **options: Any) -> Any:
        venv = rock_envs.make_vec(list(env_fns), backend=BACKEND, autoreset_mode=autoreset_mode, **options)
        venv.__class__ = cls
        return venv

    class AsyncStandIn(RockVectorEnv):
        """`AsyncVectorEnv(env_fns, shared_memory, copy, context, daemon, worker, observation_mode, autoreset_mode)`."""

        def __new__(
            cls,
            env_fns: Sequence[Callable[[], Any]],
            shared_memory: bool = True,
            copy: bool = True,
            context: str | None = None,
            daemon: bool = True,
            worker: Any = None,
            observation_mode: Any = "same",
            autoreset_mode: Any = AutoresetMode.NEXT_STEP,
        ) -> Any:
            if worker is not None:
                raise NotImplementedError("rock-envs stand-in: a custom worker (AsyncVectorEnv's internals)")
            options: dict[str, Any] = {"observation_mode": observation_mode}
            if BACKEND == "subprocess":
                options["shared_memory"] = shared_memory
            if context is not None and BACKEND == "subprocess":
                options["start_method"] = context
            return build(cls, env_fns, autoreset_mode, **options)

        def __init__(self, *args: Any, **kwargs: Any) -> None:  # made by __new__
            pass

    class SyncStandIn(RockVectorEnv):
        """`SyncVectorEnv(env_fns, copy, observation_mode, autoreset_mode)`."""

        def __new__(
            cls,
            env_fns: Sequence[Callable[[], Any]],
            copy: bool = True,
            observation_mode: Any = "same",
            autoreset_mode: Any = AutoresetMode.NEXT_STEP,
        ) -> Any:
            return build(cls, env_fns, autoreset_mode, observation_mode=observation_mode)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

    if BACKEND == "subprocess":
        AsyncStandIn.__name__ = AsyncStandIn.__qualname__ = "AsyncVectorEnv"
        gymnasium.vector.AsyncVectorEnv = async_vector_env.AsyncVectorEnv = AsyncStandIn  # type: ignore[misc]
    elif BACKEND == "local":
        SyncStandIn.__name__ = SyncStandIn.__qualname__ = "SyncVectorEnv"
        gymnasium.vector.SyncVectorEnv = sync_vector_env.SyncVectorEnv = SyncStandIn  # type: ignore[misc]


def _sb3() -> None:
    import stable_baselines3.common.env_util as env_util
    import stable_baselines3.common.vec_env as vec_env

    from rock_envs.integrations.sb3 import RockVecEnv

    class StandIn(RockVecEnv):
        """`DummyVecEnv(env_fns)` / `SubprocVecEnv(env_fns, start_method=None)`."""

        def __init__(self, env_fns: Sequence[Callable[[], Any]], start_method: str | None = None):
            options = {"start_method": start_method} if start_method and BACKEND == "subprocess" else {}
            super().__init__(list(env_fns), num_envs=len(env_fns), backend=BACKEND, **options)

    name = "SubprocVecEnv" if BACKEND == "subprocess" else "DummyVecEnv"
    StandIn.__name__ = StandIn.__qualname__ = name
    for module in (vec_env, env_util):
        setattr(module, name, StandIn)


def _gem() -> None:
    import gem
    from gem.envs import registration

    import rock_envs.integrations.gem as rgem

    def make(env_id: str, **kwargs: Any) -> Any:
        return rgem.make(env_id, backend=BACKEND, **kwargs)

    registration.make = make  # gem.make_vec calls it by this name
    gem.make = make


def pytest_configure(config: Any) -> None:
    if BACKEND == "none":
        return
    {"gymnasium": _gymnasium, "sb3": _sb3, "gem": _gem}[SUITE]()
