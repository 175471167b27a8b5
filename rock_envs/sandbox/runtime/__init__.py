"""Runtimes: where sandboxes run. ``make_runtime("process")``; ``docker`` plugs in by the same name table."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import InvalidRequestError
from .base import Placement, Runtime, SandboxDirs

# name -> "module:Class", imported on first use (docker's SDK is an optional dependency)
RUNTIMES: dict[str, str] = {
    "process": "rock_envs.sandbox.runtime.process:ProcessRuntime",
    "docker": "rock_envs.sandbox.runtime.docker:DockerRuntime",
    "ray": "rock_envs.sandbox.runtime.ray:RayPlacedRuntime",  # wraps process or docker; see SandboxSpec.placement
}


def make_runtime(name: str, **options: Any) -> Runtime:
    if name not in RUNTIMES:
        raise InvalidRequestError(
            f"`make_runtime`: unknown runtime {name!r}; expected one of {', '.join(sorted(RUNTIMES))}."
        )
    module, _, cls = RUNTIMES[name].partition(":")
    try:
        factory = getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise InvalidRequestError(f"`make_runtime`: runtime {name!r} is not available here: {exc}.") from exc
    runtime: Runtime = factory(**options)
    return runtime


__all__ = ["RUNTIMES", "Placement", "Runtime", "SandboxDirs", "make_runtime"]
