"""The runtime interface: where a sandbox's agent runs. ``process`` is here; ``docker`` implements the same.

A runtime only starts an agent and kills it. Everything else (sessions, files, jobs, env hosting,
TTLs, ownership) lives in the manager and the agent, so every runtime behaves alike.

Contract, for every runtime:

- ``start(sandbox_id, spec, dirs)``: before, ``dirs.base`` exists and is empty but for ``dirs.root``;
  after, an agent listens on ``dirs.socket`` (a unix socket on the host) and its ``hello`` answers,
  or :class:`~rock_envs.sandbox.errors.SandboxStartError` was raised and nothing is left running.
  The agent must exit when the first connection that said ``hello`` with ``lifeline`` closes.
- ``kill(placement)``: every process of the sandbox is gone when it returns; safe to call twice.
- ``record(placement)``: a JSON-able dict the manager persists, from which ``reap(record)`` can kill
  what is left after the manager itself crashed (called by the next manager on the same runtime dir).
- ``close()``: release the runtime's own helpers (not the sandboxes).
- ``snapshot(placement, dirs, snapshot_id, dest)``: the sandbox's filesystem changes copied under
  ``dest`` (``dest/root``: its directory tree); returns the facts the snapshot records (``size``,
  docker's ``image``). ``prepare(snapshot, files, dirs, spec)`` fills a new sandbox's directory from one
  before ``start``; ``delete_snapshot`` frees what only the runtime holds (an image).
- ``checkpoint(placement, dirs, dest)``: the sandbox's processes checkpointed under ``dest``
  (``memory=True``), or :class:`~rock_envs.sandbox.errors.CheckpointUnavailableError` saying why
  it cannot be done here.
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..models import SandboxSnapshot, SandboxSpec
from ..snapshots import copy_tree

SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def sandbox_env(spec: SandboxSpec, python: str, home: str, lang: str) -> dict[str, str]:
    """The environment a sandbox's agent (and every command it runs) starts with: a clean one, the
    sandbox's Python first on PATH, then the spec's own variables."""
    base = {
        "PATH": ":".join([os.path.dirname(python), *SYSTEM_PATH]),
        "HOME": home,
        "LANG": lang,
        "TERM": "dumb",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    return {**base, **spec.env}


@dataclass(frozen=True)
class SandboxDirs:
    """A sandbox's host directories. ``root`` is the working dir; the agent's socket sits in ``base``."""

    base: str

    @property
    def root(self) -> str:
        return os.path.join(self.base, "root")

    @property
    def socket(self) -> str:
        return os.path.join(self.base, "agent.sock")

    @property
    def log(self) -> str:
        return os.path.join(self.base, "agent.log")


@dataclass
class Placement:
    """Where a started sandbox lives."""

    sandbox_id: str
    socket: str
    """The agent's address: its unix socket's host path, or ``tcp://host:port`` of its relay."""
    root: str
    """The working directory as the sandbox's own processes see it."""
    isolation: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    """Runtime-specific facts (a pid, a container id, cgroup paths)."""
    secret: str = ""
    """What a relay at a ``tcp://`` address asks for first (never persisted: not in ``extra``)."""
    where: str = ""
    """Where it runs, for error messages: ``""`` here, `` on Ray node ...`` elsewhere."""


class Runtime(ABC):
    name: ClassVar[str]

    @abstractmethod
    async def start(self, sandbox_id: str, spec: SandboxSpec, dirs: SandboxDirs, timeout: float) -> Placement: ...

    @abstractmethod
    async def kill(self, placement: Placement) -> None: ...

    def record(self, placement: Placement) -> dict[str, Any]:
        return {"runtime": self.name, "sandbox_id": placement.sandbox_id, **placement.extra}

    @abstractmethod
    async def reap(self, record: dict[str, Any]) -> None: ...

    async def close(self) -> None:
        return None

    # ---- snapshots ----------------------------------------------------------------------------

    async def snapshot(self, placement: Placement, dirs: SandboxDirs, snapshot_id: str, dest: str) -> dict[str, Any]:
        """Copy what the sandbox wrote (its directory tree) to ``dest/root``; the facts to record."""
        return {"size": await copy_tree(dirs.root, os.path.join(dest, "root"))}

    async def prepare(self, snapshot: SandboxSnapshot, files: str, dirs: SandboxDirs, spec: SandboxSpec) -> SandboxSpec:
        """Fill a new sandbox's directory from a snapshot's files, before ``start``; the spec to start it
        with (``spec``; docker: with the snapshot's image)."""
        await copy_tree(files, dirs.root)
        return spec

    async def delete_snapshot(self, snapshot: SandboxSnapshot) -> None:
        """Free what the runtime holds of a snapshot being deleted (its files are the manager's)."""
        return None

    async def checkpoint(self, placement: Placement, dirs: SandboxDirs, dest: str) -> None:
        """Checkpoint the sandbox's processes (``memory=True``) under ``dest``; no runtime can yet, and
        the error says exactly why on this machine (see ``criu.py``)."""
        from . import criu

        raise await asyncio.to_thread(criu.unavailable, self.name)
