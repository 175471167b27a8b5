"""`rock_envs.make`: an env id in, an env with the rock-envs face out."""

from __future__ import annotations

from typing import Any

import gymnasium

from rock_envs.core.adapters import GemEnv, GymnasiumEnv
from rock_envs.core.env import Env
from rock_envs.core.errors import EnvArgumentError, MissingDependencyError
from rock_envs.registry import EnvSpec, check_kwargs, load_entry_point, spec as find_spec
from rock_envs.requirements import missing_requirement

BACKENDS = ("local", "subprocess", "docker", "ray", "remote")
# Arguments `gymnasium.make` takes itself, on top of the env's own.
_GYMNASIUM_MAKE_ARGS = ("max_episode_steps", "disable_env_checker", "render_mode", "autoreset", "apply_api_compatibility")


def make(env_id: str | EnvSpec, backend: str | None = None, **kwargs: Any) -> Env:
    """Build one env. `backend` picks where it runs (default: the spec's preferred backend, "local").

    With `backend="local"` the env lives in this process; any other backend gives a one-env vector
    env behind the same `reset/step` face. `kwargs` override the spec's kwargs.
    """
    env_spec = env_id if isinstance(env_id, EnvSpec) else find_spec(env_id)
    backend = backend or env_spec.backend
    if backend != "local":
        if backend not in BACKENDS:
            raise EnvArgumentError(f"`rock_envs.make`: unknown backend {backend!r}; expected one of {list(BACKENDS)}.")
        from rock_envs.backends.single import make_single

        return make_single(env_spec, backend=backend, **kwargs)
    return build_local(env_spec, kwargs)


def build_local(env_spec: EnvSpec, kwargs: dict[str, Any]) -> Env:
    """Construct the env in this process and wrap it in its adapter."""
    missing = missing_requirement(env_spec)
    if missing is not None:
        raise MissingDependencyError(f"`rock_envs.make({env_spec.id!r})`: {missing}")
    merged = {**env_spec.kwargs, **kwargs}
    try:
        if env_spec.source == "gymnasium":
            check_kwargs(env_spec, gymnasium.envs.registration.load_env_creator(env_spec.entry_point)
                         if isinstance(env_spec.entry_point, str) else env_spec.entry_point,
                         merged, extra=_GYMNASIUM_MAKE_ARGS)
            raw = gymnasium.make(env_spec.id, **merged)
        else:
            factory = load_entry_point(env_spec)
            check_kwargs(env_spec, factory, merged)
            raw = factory(**merged)
    except LookupError as e:  # NLTK corpora and similar data that is not installed
        raise MissingDependencyError(
            f"`rock_envs.make({env_spec.id!r})`: data the env needs is not installed: {str(e).strip()[:500]}"
        ) from e
    return adapt(raw, env_spec)


def adapt(raw: Any, env_spec: EnvSpec | None) -> Env:
    """Wrap a constructed env: Gymnasium envs keep their spaces, everything else is a text env."""
    if isinstance(raw, Env):
        raw.spec = env_spec
        return raw
    if isinstance(raw, gymnasium.Env):
        return GymnasiumEnv(raw, env_spec)
    if callable(getattr(raw, "reset", None)) and callable(getattr(raw, "step", None)):
        return GemEnv(raw, env_spec)
    raise EnvArgumentError(
        f"`rock_envs.make({getattr(env_spec, 'id', '?')!r})`: the entry point returned a "
        f"{type(raw).__name__}, which has no `reset`/`step`; it must return a GEM or Gymnasium env."
    )
