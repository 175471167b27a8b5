"""rock-envs: any registered env id, one Gymnasium/GEM `reset/step` face, run where you pick.

env = rock_envs.make("game:Sokoban-v0-easy")                      # in-process
venv = rock_envs.make_vec("CartPole-v1", num_envs=64, backend="subprocess")
"""

from rock_envs.core.env import Env
from rock_envs.core.errors import (
    ActionError,
    BackendUnavailableError,
    CallOrderError,
    CallPendingError,
    CodeVersionError,
    EnvArgumentError,
    EnvClosedError,
    ImageBuildError,
    MissingDependencyError,
    NoCallPendingError,
    RemoteBackendError,
    RemoteError,
    RockEnvsError,
    SnapshotError,
    SpaceMismatchError,
    UnknownEnvError,
    WorkerDiedError,
    WorkerTimeoutError,
)
from rock_envs.core.snapshot import EnvSnapshot
from rock_envs.core.spaces import AnyText
from rock_envs.make import make
from rock_envs.registry import EnvSpec, list_envs, register, spec
from rock_envs.trajectories import replay
from rock_envs.vector.make_vec import make_vec
from rock_envs.vector.stats import VectorStats, WorkerStats, serve_metrics
from rock_envs.vector.vector_env import RockVectorEnv

__version__ = "0.1.0"

__all__ = [
    "ActionError",
    "AnyText",
    "BackendUnavailableError",
    "CallOrderError",
    "CallPendingError",
    "CodeVersionError",
    "Env",
    "EnvArgumentError",
    "EnvClosedError",
    "EnvSnapshot",
    "EnvSpec",
    "ImageBuildError",
    "MissingDependencyError",
    "NoCallPendingError",
    "RemoteBackendError",
    "RemoteError",
    "RockEnvsError",
    "RockVectorEnv",
    "SnapshotError",
    "SpaceMismatchError",
    "UnknownEnvError",
    "VectorStats",
    "WorkerDiedError",
    "WorkerStats",
    "WorkerTimeoutError",
    "list_envs",
    "make",
    "make_vec",
    "register",
    "replay",
    "serve_metrics",
    "spec",
]
