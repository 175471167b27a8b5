"""`rock_envs.make_vec`: N copies of an env, on the backend the caller names."""

from __future__ import annotations

from typing import Any, Callable

from gymnasium.vector import AutoresetMode

from rock_envs.backends import backend_option_names, create_group, default_num_workers
from rock_envs.build import EnvFactory
from rock_envs.core.errors import EnvArgumentError
from rock_envs.registry import EnvSpec, spec as find_spec
from rock_envs.vector.vector_env import RockVectorEnv

AUTORESET_MODES = ("next_step", "same_step", "disabled")
SPEC_DEFAULTS = ("image", "cpus", "memory")  # `EnvSpec` fields that are backend options too


def make_vec(env_id: str | EnvSpec | Callable[[], Any], num_envs: int, backend: str | None = None, *,
             num_workers: int | None = None, autoreset_mode: Any = "next_step", batch_size: int | None = None,
             on_error: str = "reset", timeout: float | None = None, env_kwargs: dict[str, Any] | None = None,
             **kwargs: Any) -> RockVectorEnv:
    """`num_envs` envs of `env_id` (an id, a spec, or a callable returning an env) on `backend`
    (default: the spec's `backend`, else "subprocess"). The spec's `image`, `cpus` and `memory` are
    the defaults of the backends that take them (docker, remote).

    Keywords the backend takes (see `rock_envs.backends`) go to it; the rest are the env's kwargs
    (or pass them as `env_kwargs`). `num_workers` defaults to the usable cores.
    """
    if not isinstance(num_envs, int) or num_envs < 1:
        raise EnvArgumentError(f"`make_vec`: num_envs must be a positive int, got {num_envs!r}.")
    mode = autoreset_mode.name.lower() if isinstance(autoreset_mode, AutoresetMode) else autoreset_mode
    if mode not in AUTORESET_MODES:
        raise EnvArgumentError(f"`make_vec`: autoreset_mode must be one of {AUTORESET_MODES}, got {autoreset_mode!r}.")
    if on_error not in ("reset", "raise"):
        raise EnvArgumentError(f"`make_vec`: on_error must be 'reset' or 'raise', got {on_error!r}.")
    env_spec = None if callable(env_id) and not isinstance(env_id, EnvSpec) else \
        env_id if isinstance(env_id, EnvSpec) else find_spec(env_id)  # fmt: skip
    backend = backend or (env_spec.backend if env_spec is not None else None) or "subprocess"
    options = {k: kwargs.pop(k) for k in list(kwargs) if k in backend_option_names(backend)}
    if env_spec is not None:  # the spec's container defaults, where the backend takes them and the caller gave none
        for name in SPEC_DEFAULTS:
            if name in backend_option_names(backend) and name not in options and getattr(env_spec, name) is not None:
                options[name] = getattr(env_spec, name)
    env_kwargs = {**kwargs, **(env_kwargs or {})}
    if env_spec is None:
        factory = EnvFactory(None, None, env_fn=env_id)
        if env_kwargs:
            raise EnvArgumentError(f"`make_vec`: env kwargs {sorted(env_kwargs)} cannot go to a callable; bind them in it.")
    else:
        factory = EnvFactory(env_spec, env_kwargs)
    workers = num_workers if num_workers is not None else default_num_workers(backend, num_envs, options)
    if not isinstance(workers, int) or not 1 <= workers <= num_envs:
        raise EnvArgumentError(f"`make_vec`: num_workers must be in 1..num_envs ({num_envs}), got {workers!r}.")
    group = create_group(backend, workers, options)
    return RockVectorEnv(group, factory, num_envs, autoreset_mode=mode, on_error=on_error,
                         batch_size=batch_size, timeout=timeout, spec=env_spec)
