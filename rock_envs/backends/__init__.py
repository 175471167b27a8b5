"""Backends: where EnvWorkers run and how they are reached. Each is a `WorkerGroup`.

| name       | workers are                              | options (keywords of `make_vec`)        |
|------------|------------------------------------------|-----------------------------------------|
| local      | EnvWorkers in the caller's process       |                                         |
| subprocess | processes on this machine, over pipes    | start_method, shared_memory             |
| docker     | containers on a Docker engine            | image, envs_per_container, cpus, memory |
| ray        | Ray actors                               | worker_resources, ray_address, placement|
| remote     | sandboxes behind a rock-envs server      | url, token, runtime, envs_per_sandbox, image, cpus, memory, ttl, reconnect_timeout |
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Literal, get_args

from rock_envs.backends.base import WorkerGone, WorkerGroup
from rock_envs.core.errors import EnvArgumentError

BackendName = Literal["local", "subprocess", "docker", "ray", "remote"]
"""Where envs run: the one word `make` and `make_vec` take."""
BACKENDS: tuple[BackendName, ...] = get_args(BackendName)

# name -> (module, class, the make_vec keywords it takes)
_BACKENDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "local": ("rock_envs.backends.local", "LocalGroup", ()),
    "subprocess": ("rock_envs.backends.subprocess", "SubprocessGroup", ("start_method", "shared_memory")),
    "docker": (
        "rock_envs.backends.docker",
        "DockerGroup",
        ("image", "envs_per_container", "cpus", "memory", "docker_client"),
    ),
    "ray": ("rock_envs.backends.ray", "RayGroup", ("worker_resources", "ray_address", "placement")),
    "remote": (
        "rock_envs.backends.remote",
        "RemoteGroup",
        ("url", "token", "runtime", "envs_per_sandbox", "image", "cpus", "memory", "ttl", "reconnect_timeout"),
    ),
}


assert tuple(_BACKENDS) == BACKENDS  # one table: the Literal and the implementations agree


def backend_names() -> tuple[str, ...]:
    return BACKENDS


def backends_taking(option: str) -> list[str]:
    return [name for name, (_, _, options) in _BACKENDS.items() if option in options]


def backend_option_names(backend: str) -> tuple[str, ...]:
    return _BACKENDS[backend][2] if backend in _BACKENDS else ()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_num_workers(backend: str, num_envs: int, options: dict[str, Any]) -> int:
    if backend == "local":
        return 1
    if backend == "docker" and options.get("envs_per_container"):
        return -(-num_envs // int(options["envs_per_container"]))
    if backend == "remote" and options.get("envs_per_sandbox"):
        return -(-num_envs // int(options["envs_per_sandbox"]))
    return max(1, min(num_envs, usable_cores()))


def create_group(backend: str, num_workers: int, options: dict[str, Any]) -> WorkerGroup:
    if backend not in _BACKENDS:
        raise EnvArgumentError(f"`make_vec`: unknown backend {backend!r}; expected one of {list(_BACKENDS)}.")
    module_name, class_name, _ = _BACKENDS[backend]
    group_class = getattr(importlib.import_module(module_name), class_name)
    return group_class(num_workers, **options)


__all__ = [
    "BACKENDS",
    "BackendName",
    "WorkerGone",
    "WorkerGroup",
    "backend_names",
    "backends_taking",
    "create_group",
    "default_num_workers",
    "usable_cores",
]
