"""``SandboxStore``: where each sandbox is, written by the manager that owns it, read by data replicas.

The manager puts a :class:`SandboxRecord` when a sandbox starts running (or is claimed under a new
id), puts it again when its state changes (``dead``), and removes it *before* it kills the
sandbox, so once ``delete`` returns no replica finds it. Replicas never write records; they report
when they last used each sandbox (:meth:`touch`), which the manager's reaper reads before it
removes a sandbox for idleness (:meth:`last_used`), so a sandbox busy only through replicas is
never reaped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from pydantic import BaseModel

from ..errors import StoreUnreachableError
from ..models import SandboxInfo

__all__ = ["MemoryStore", "SandboxRecord", "SandboxStore", "StoreUnreachableError"]


class SandboxRecord(BaseModel):
    """What a replica needs to reach a sandbox it does not own."""

    info: SandboxInfo
    """Its status, spec and times as the control plane last wrote them."""
    socket: str
    """Its agent's address: a host path of a unix socket, or ``tcp://host:port`` of the relay on its Ray node."""
    secret: str = ""
    """What the relay asks for first (``""`` for a unix socket)."""
    where: str = ""
    """Where it runs, for error messages (`` on Ray node ...``)."""
    owner: str
    """The id of the control plane's runtime dir (its containers' ``owner`` label)."""


class SandboxStore(ABC):
    """Records by sandbox id, and the replicas' last uses. ``aclose()`` is safe to call twice."""

    @abstractmethod
    async def put(self, record: SandboxRecord) -> None: ...

    @abstractmethod
    async def remove(self, sandbox_id: str) -> None: ...

    @abstractmethod
    async def get(self, sandbox_id: str, fresh: bool = False) -> SandboxRecord | None:
        """The record, or None. ``fresh``: never from a cache (after an agent turned out to be gone)."""

    @abstractmethod
    async def all(self) -> list[SandboxRecord]: ...

    @abstractmethod
    async def touch(self, used: dict[str, float]) -> None:
        """Replicas: these sandboxes were in use at these times (``time.time()``)."""

    @abstractmethod
    async def last_used(self, sandbox_ids: list[str]) -> dict[str, float]:
        """The latest :meth:`touch` of each id that has one."""

    async def aclose(self) -> None:
        return None


class MemoryStore(SandboxStore):
    """The single server's store: a dict in the manager's process (nothing else reads it but tests
    and in-process replicas)."""

    def __init__(self) -> None:
        self.records: dict[str, SandboxRecord] = {}
        self.used: dict[str, float] = {}

    async def put(self, record: SandboxRecord) -> None:
        self.records[record.info.id] = record

    async def remove(self, sandbox_id: str) -> None:
        self.records.pop(sandbox_id, None)
        self.used.pop(sandbox_id, None)

    async def get(self, sandbox_id: str, fresh: bool = False) -> SandboxRecord | None:
        return self.records.get(sandbox_id)

    async def all(self) -> list[SandboxRecord]:
        return list(self.records.values())

    async def touch(self, used: dict[str, float]) -> None:
        for sandbox_id, at in used.items():
            if sandbox_id in self.records:
                self.used[sandbox_id] = max(at, self.used.get(sandbox_id, 0.0))

    async def last_used(self, sandbox_ids: list[str]) -> dict[str, float]:
        return {sid: self.used[sid] for sid in sandbox_ids if sid in self.used}
