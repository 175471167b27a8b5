"""`rock_envs.make`: an env id in, an env with the rock-envs face out."""

from __future__ import annotations

import os
from typing import Any

from rock_envs.backends import BACKENDS, BackendName
from rock_envs.build import build_local
from rock_envs.core.env import Env
from rock_envs.core.errors import EnvArgumentError
from rock_envs.core.snapshot import SnapshotMode, check_mode
from rock_envs.core.trajectory import check_json
from rock_envs.registry import EnvSpec
from rock_envs.registry import spec as find_spec


def make(
    env_id: str | EnvSpec,
    backend: BackendName | None = None,
    *,
    snapshot_mode: SnapshotMode = "auto",
    record: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> Env:
    """Build one env. `backend` picks where it runs (default: the spec's preferred backend, "local").

    With `backend="local"` the env lives in this process; any other backend gives a one-env vector
    env behind the same `reset/step` face. `snapshot_mode` picks how `env.snapshot()` captures it
    ("auto", "pickle", "replay"); `record="DIR"` writes each episode to DIR as JSON Lines. `kwargs`
    override the spec's kwargs (and carry the backend's options for the other backends).
    """
    env_spec = env_id if isinstance(env_id, EnvSpec) else find_spec(env_id)
    check_mode(snapshot_mode, "rock_envs.make")
    name: str = backend or env_spec.backend or "local"
    if name != "local":
        if name not in BACKENDS:
            raise EnvArgumentError(f"`rock_envs.make`: unknown backend {name!r}; expected one of {list(BACKENDS)}.")
        from rock_envs.vector.single import make_single

        return make_single(env_spec, backend=name, snapshot_mode=snapshot_mode, record=record, **kwargs)
    env = build_local(env_spec, kwargs, snapshot_mode)
    if record is None:
        return env
    from rock_envs.trajectories import RecordedEnv

    check_json(kwargs, "kwargs", "rock_envs.make")
    return RecordedEnv(env, os.fspath(record), kwargs)
