"""Build an env from its spec in this process: the one place an entry point is called.

Workers of every backend call `EnvFactory`, so an env is built the same way everywhere.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import gymnasium

from rock_envs.core import snapshot
from rock_envs.core.adapters import GemEnv, GymnasiumEnv
from rock_envs.core.env import Env
from rock_envs.core.errors import EnvArgumentError, MissingDependencyError
from rock_envs.registry import EnvSpec, check_kwargs, load_entry_point
from rock_envs.requirements import missing_requirement

# Arguments `gymnasium.make` takes itself, on top of the env's own.
_GYMNASIUM_MAKE_ARGS = (
    "max_episode_steps",
    "disable_env_checker",
    "render_mode",
    "autoreset",
    "apply_api_compatibility",
)


def build_local(env_spec: EnvSpec, kwargs: dict[str, Any], snapshot_mode: snapshot.SnapshotMode = "auto") -> Env:
    """Construct the env in this process and wrap it in its adapter (snapshots in `snapshot_mode`)."""
    missing = missing_requirement(env_spec)
    if missing is not None:
        raise MissingDependencyError(f"`rock_envs.make({env_spec.id!r})`: {missing}")
    merged = {**env_spec.kwargs, **kwargs}
    try:
        if env_spec.source == "gymnasium":
            check_kwargs(
                env_spec,
                gymnasium.envs.registration.load_env_creator(env_spec.entry_point)
                if isinstance(env_spec.entry_point, str)
                else env_spec.entry_point,
                kwargs,
                extra=_GYMNASIUM_MAKE_ARGS,
            )
            raw = gymnasium.make(env_spec.id, **merged)
        else:
            factory = load_entry_point(env_spec)
            check_kwargs(env_spec, factory, kwargs)  # the spec's own kwargs are the author's business
            raw = factory(**merged)
    except LookupError as e:  # NLTK corpora and similar data that is not installed
        raise MissingDependencyError(
            f"`rock_envs.make({env_spec.id!r})`: data the env needs is not installed: {str(e).strip()[:500]}"
        ) from e
    env = adapt(raw, env_spec)
    snapshot.prepare(env, snapshot_mode, kwargs)
    return env


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


class EnvFactory:
    """A picklable `factory(env_index) -> Env`: from a spec and kwargs, from one spec and kwargs per
    env (`per_env`, a mixed batch), or from the user's callables (env i from `env_fns[i]()`)."""

    def __init__(
        self,
        spec: EnvSpec | None,
        kwargs: dict[str, Any] | None = None,
        env_fns: Sequence[Callable[[], Any]] | None = None,
        per_env: Sequence[tuple[EnvSpec, dict[str, Any]]] | None = None,
    ):
        self.spec, self.kwargs = spec, dict(kwargs or {})
        self.env_fns = list(env_fns) if env_fns is not None else None
        self.per_env = list(per_env) if per_env is not None else None

    def __call__(self, index: int) -> Env:
        if self.env_fns is not None:
            env = adapt(self.env_fns[index](), self.spec)
            snapshot.prepare(env, "auto")
            return env
        if self.per_env is not None:
            spec, kwargs = self.per_env[index]
            return build_local(spec, kwargs)
        assert self.spec is not None
        return build_local(self.spec, self.kwargs)

    def identity(self, index: int) -> tuple[str | None, dict[str, Any] | None]:
        """Env `index`'s id and kwargs (None, None: made by a callable)."""
        if self.per_env is not None:
            spec, kwargs = self.per_env[index]
            return spec.id, dict(kwargs)
        return (self.spec.id, dict(self.kwargs)) if self.spec is not None else (None, None)

    def describe(self, index: int) -> str:
        """How errors name env `index`: "env 3 ('CartPole-v1')"."""
        env_id, _ = self.identity(index)
        return f"env {index}" if env_id is None else f"env {index} ({env_id!r})"


class NativeFactory:
    """A picklable `factory(num_envs) -> gymnasium.vector.VectorEnv`: the spec's native vector env
    (`EnvSpec.vector_entry_point`) for a worker's block of envs (`make_vec(..., vectorize="native")`)."""

    def __init__(self, spec: EnvSpec, kwargs: dict[str, Any] | None = None):
        self.spec, self.kwargs = spec, dict(kwargs or {})

    def __call__(self, num_envs: int) -> Any:
        merged = {**self.spec.kwargs, **self.kwargs}
        if self.spec.source == "gymnasium":
            return gymnasium.make_vec(self.spec.id, num_envs, vectorization_mode="vector_entry_point", **merged)
        entry = self.spec.vector_entry_point
        assert entry is not None  # make_vec checked that the spec has one
        factory = load_entry_point(EnvSpec(self.spec.id, entry))
        return factory(num_envs=num_envs, **merged)

    def identity(self, index: int) -> tuple[str | None, dict[str, Any] | None]:
        return self.spec.id, dict(self.kwargs)
