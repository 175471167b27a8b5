"""EnvWorker: many envs in one process behind one typed, batched protocol (see `protocol`)."""

from rock_envs.worker.env_worker import EnvWorker
from rock_envs.worker.loop import serve

__all__ = ["EnvWorker", "serve"]
