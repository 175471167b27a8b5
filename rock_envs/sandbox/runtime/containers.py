"""Docker containers of sandboxes on the engine: their labels, whose they are, and removing them.

Every sandbox container carries ``rock-envs.owner`` (the manager's runtime dir id),
``rock-envs.sandbox``, ``rock-envs.host`` and ``rock-envs.manager`` (pid and start time of the owning
process), so a restarted server (or ``remove_containers``) can tell its leftovers from live ones.
"""

from __future__ import annotations

import os
from typing import Any

from ..state import process_start_time
from .base import SandboxDirs

LABEL = "rock-envs"


def label(name: str) -> str:
    return f"{LABEL}.{name}"


def manager_label() -> str:
    return f"{os.getpid()}:{process_start_time(os.getpid())}"


def manager_alive(manager: str) -> bool:
    pid, _, start = manager.partition(":")
    try:
        return str(process_start_time(int(pid))) == start
    except ValueError:
        return False


def owner_of(dirs: SandboxDirs) -> str:
    """The id of the runtime dir holding ``dirs`` (``RUNTIME_DIR/sandboxes/<id>``; see ``state.py``)."""
    path = os.path.join(os.path.dirname(os.path.dirname(dirs.base)), "owner")
    try:
        with open(path) as fh:
            return fh.read().strip() or "unknown"
    except OSError:
        return "unknown"


def ignore_gone(fn: Any, *args: Any, **kwargs: Any) -> None:
    import docker.errors

    try:
        fn(*args, **kwargs)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:  # 409: removal already in progress (auto_remove) is fine
        if exc.status_code != 409:
            raise


def remove_containers(owner: str | None = None, client: Any = None) -> int:
    """Remove every rock-envs sandbox container (of ``owner`` if given) on the engine; returns how many."""
    import docker

    client = client or docker.from_env()
    wanted = f"{label('owner')}={owner}" if owner else label("sandbox")
    containers = client.api.containers(all=True, filters={"label": [wanted]})
    for container in containers:
        ignore_gone(client.api.remove_container, container["Id"], force=True)
    return len(containers)


__all__ = ["LABEL", "ignore_gone", "label", "manager_alive", "manager_label", "owner_of", "remove_containers"]
