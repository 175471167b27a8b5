"""Backends: where EnvWorkers run and how they are reached. Each is a `WorkerGroup`.

| name       | workers are                              | options: keywords of `make_vec`, fields of |
|------------|------------------------------------------|--------------------------------------------|
| local      | EnvWorkers in the caller's process       | `LocalOptions` (none)                      |
| subprocess | processes on this machine, over sockets  | `SubprocessOptions`                        |
| docker     | containers on a Docker engine            | `DockerOptions`                            |
| ray        | Ray actors                               | `RayOptions`                               |
| remote     | sandboxes behind a rock-envs server      | `RemoteOptions`                            |

Each options dataclass (`rock_envs.backends.options`) documents its fields and checks them when made.
"""

from __future__ import annotations

import importlib
from typing import Literal, get_args

from rock_envs.backends.base import WorkerGone, WorkerGroup
from rock_envs.backends.options import (
    OPTION_NAMES,
    OPTIONS,
    BackendOptions,
    DockerOptions,
    LocalOptions,
    RayOptions,
    RemoteOptions,
    SubprocessOptions,
    backends_taking,
    options_for,
)
from rock_envs.core.cores import usable_cores
from rock_envs.core.errors import EnvArgumentError

BackendName = Literal["local", "subprocess", "docker", "ray", "remote"]
"""Where envs run: the one word `make` and `make_vec` take."""
BACKENDS: tuple[BackendName, ...] = get_args(BackendName)

# name -> (module, class): imported when used (ray and docker are heavy, and optional)
_GROUPS: dict[str, tuple[str, str]] = {
    "local": ("rock_envs.backends.local", "LocalGroup"),
    "subprocess": ("rock_envs.backends.subprocess", "SubprocessGroup"),
    "docker": ("rock_envs.backends.docker", "DockerGroup"),
    "ray": ("rock_envs.backends.ray", "RayGroup"),
    "remote": ("rock_envs.backends.remote", "RemoteGroup"),
}

assert tuple(_GROUPS) == BACKENDS == tuple(OPTIONS)  # one table: the Literal, the groups and their options agree


def backend_names() -> tuple[str, ...]:
    return BACKENDS


def backend_option_names(backend: str) -> tuple[str, ...]:
    return OPTIONS[backend].names() if backend in OPTIONS else ()


def create_group(
    backend: str, num_workers: int, options: BackendOptions | None = None, images: list[str | None] | None = None
) -> WorkerGroup:
    """The worker group of `backend` (not started), with its options (default: the backend's
    defaults); `images`: worker w's container image, for a docker mix of images."""
    if backend not in _GROUPS:
        raise EnvArgumentError(f"`make_vec`: unknown backend {backend!r}; expected one of {list(_GROUPS)}.")
    module_name, class_name = _GROUPS[backend]
    group_class = getattr(importlib.import_module(module_name), class_name)
    if images is not None:
        return group_class(num_workers, options or OPTIONS[backend](), images=images)
    if getattr(options, "caller_worker", False):  # worker 0 runs in the caller (`caller_worker`)
        from rock_envs.backends.caller_worker import CallerWorkerGroup

        return CallerWorkerGroup(group_class(num_workers - 1, options))
    return group_class(num_workers, options or OPTIONS[backend]())


__all__ = [
    "BACKENDS",
    "OPTIONS",
    "OPTION_NAMES",
    "BackendName",
    "BackendOptions",
    "DockerOptions",
    "LocalOptions",
    "RayOptions",
    "RemoteOptions",
    "SubprocessOptions",
    "WorkerGone",
    "WorkerGroup",
    "backend_names",
    "backend_option_names",
    "backends_taking",
    "create_group",
    "options_for",
    "usable_cores",
]
