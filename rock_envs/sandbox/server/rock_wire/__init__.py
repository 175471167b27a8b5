"""ROCK's wire on ``rock-envs serve``: rl-rock's own client, ``rock.make`` and ROLL's ROCK envs run
against it unchanged. A thin router over the same :class:`~rock_envs.sandbox.local.LocalSandboxAPI`
as rock-envs' own routes; it translates ROCK's names, envelope and codes, and holds no sandbox logic.

| file | one idea |
| --- | --- |
| ``envelope.py`` | ROCK's ``{"status", "message", "error", "result"}`` and its codes; every error a ``Failed`` |
| ``auth.py`` | the server's token in any header a ROCK or ROLL client can send |
| ``models.py`` | ROCK's request bodies (lenient) |
| ``registry.py`` | ROCK ids, start phases, the ``start_async`` mapping, tombstones |
| ``lifecycle.py`` | start, status, stop, delete, restart, list, get_token, the unsupported calls |
| ``commands.py`` | sessions and commands as ROCK clients observe them |
| ``files.py`` | write_file, read_file, multipart upload |
| ``gem.py`` | the GEM env routes, backed by env workers |
"""

from __future__ import annotations

from fastapi import FastAPI

from . import commands, files  # noqa: F401  (their routes join lifecycle's router)
from .gem import GemEnvs
from .gem import router as gem_router
from .lifecycle import router as sandbox_router
from .registry import Registry, RockWireConfig

PREFIX = "/apis/"


def mount(app: FastAPI, config: RockWireConfig) -> None:
    """Add ROCK's routes to a sandbox server app (after ``app.state.api`` and ``app.state.quota`` exist)."""
    app.state.rock = Registry(app.state.api, config, app.state.quota)
    app.state.rock_gem = GemEnvs(app.state.api)
    app.include_router(sandbox_router)
    app.include_router(gem_router)


async def close(app: FastAPI) -> None:
    await app.state.rock.close()
    await app.state.rock_gem.close_all()


__all__ = ["PREFIX", "RockWireConfig", "close", "mount"]
