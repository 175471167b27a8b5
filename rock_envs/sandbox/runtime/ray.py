"""Sandboxes placed on Ray nodes: Ray picks a node with the sandbox's cpus and memory, and an actor
there starts it with an ordinary runtime (``process`` or ``docker``).

    SandboxConfig(placement="ray", cpus=2, memory="4g")      # the manager builds RayPlacedRuntime(inner=runtime)

One actor per sandbox, asking Ray for ``num_cpus=spec.cpus`` (0 when unlimited) and
``memory=spec.memory`` bytes, so Ray's scheduler chooses the node and accounts for the sandbox;
``node_id=`` pins every sandbox to one node. The actor builds the inner runtime on its node and runs
its ``start``/``kill`` there; ``kill`` also ends the actor, freeing its resources. The agent's socket is
the inner runtime's (a unix socket under the sandbox's directory), so the manager must share that
directory with the node: true on a single-node cluster. Reaching an agent on another node needs a
relay of the agent's socket over the network (not built yet).

Ray must be initialised by the caller (``ray.init(...)``) before the first sandbox.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from ..errors import InvalidRequestError, SandboxStartError
from ..models import SandboxSnapshot, SandboxSpec
from .base import Placement, Runtime, SandboxDirs

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


class SandboxHost:
    """The actor on the chosen node: an inner runtime, and the one sandbox it started."""

    def __init__(self, inner: str, inner_options: dict[str, Any]):
        from . import make_runtime

        self.runtime = make_runtime(inner, **inner_options)

    async def start(self, sandbox_id: str, spec: dict[str, Any], base: str, timeout: float) -> dict[str, Any]:
        placement = await self.runtime.start(sandbox_id, SandboxSpec(**spec), SandboxDirs(base), timeout)
        import ray

        return {
            "socket": placement.socket,
            "root": placement.root,
            "isolation": placement.isolation,
            "extra": placement.extra,
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
        }

    async def kill(self, sandbox_id: str, extra: dict[str, Any]) -> None:
        await self.runtime.kill(Placement(sandbox_id, "", "", [], extra))
        await self.runtime.close()


class RayPlacedRuntime(Runtime):
    name: ClassVar[str] = "ray"

    def __init__(self, inner: str = "process", inner_options: dict[str, Any] | None = None, node_id: str | None = None):
        self.inner = inner
        self.inner_options = inner_options or {}
        self.node_id = node_id
        self._actors: dict[str, Any] = {}

    def _options(self, sandbox_id: str, spec: SandboxSpec) -> dict[str, Any]:
        options: dict[str, Any] = {
            "num_cpus": float(spec.cpus or 0),
            "name": f"rock-envs-{sandbox_id}",
            "max_restarts": 0,
            "max_concurrency": 4,
        }
        memory = spec.memory_bytes()
        if memory:
            options["memory"] = memory
        if self.node_id:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(self.node_id, soft=False)
        return options

    async def start(self, sandbox_id: str, spec: SandboxSpec, dirs: SandboxDirs, timeout: float) -> Placement:
        import ray

        if not ray.is_initialized():
            raise SandboxStartError(
                "`Sandbox.start` with Ray placement: Ray is not initialised in this process; "
                "call `ray.init(address=...)` first."
            )
        actor = (
            ray.remote(SandboxHost).options(**self._options(sandbox_id, spec)).remote(self.inner, self.inner_options)
        )
        self._actors[sandbox_id] = actor
        try:
            start: Any = actor.start  # a Ray actor handle's method: `.remote(...)` calls it
            placed = await start.remote(sandbox_id, spec.model_dump(), dirs.base, timeout)
        except Exception as exc:
            self._forget(sandbox_id)
            raise SandboxStartError(
                f"`Sandbox.start` on Ray: the {self.inner} runtime could not start the sandbox on its node: {exc}"
            ) from exc
        extra = {
            "inner": placed["extra"],
            "node_id": placed["node_id"],
            "host_pid": placed["pid"],
            "actor": f"rock-envs-{sandbox_id}",
        }
        return Placement(sandbox_id, placed["socket"], placed["root"], list(placed["isolation"]), extra)

    async def kill(self, placement: Placement) -> None:
        actor = self._actors.get(placement.sandbox_id)
        if actor is None:
            return
        try:
            await actor.kill.remote(placement.sandbox_id, placement.extra.get("inner", {}))
        except Exception:  # the actor (or its node) is gone: what it started went with it, or the reaper takes it
            pass
        self._forget(placement.sandbox_id)

    def _forget(self, sandbox_id: str) -> None:
        import ray

        actor = self._actors.pop(sandbox_id, None)
        if actor is not None:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:
                pass

    def record(self, placement: Placement) -> dict[str, Any]:
        return {**super().record(placement), "inner_runtime": self.inner}

    async def reap(self, record: dict[str, Any]) -> None:
        """After a crashed manager: end the actor if Ray still has it; the inner runtime reaps the rest here."""
        import ray

        if ray.is_initialized() and record.get("actor"):
            try:
                ray.kill(ray.get_actor(record["actor"]), no_restart=True)
            except ValueError:  # no such actor any more
                pass
        from . import make_runtime

        inner = make_runtime(self.inner, **self.inner_options)
        await inner.reap({**record.get("inner", {}), "sandbox_id": record.get("sandbox_id")})
        await inner.close()

    def _refuse_docker(self, call: str) -> None:
        if self.inner != "process":
            raise InvalidRequestError(
                f"`{call}`: snapshots of Ray-placed {self.inner} sandboxes are not supported (the image commit "
                "would run on another node); use placement='local' for sandboxes to snapshot."
            )

    async def snapshot(self, placement: Placement, dirs: SandboxDirs, snapshot_id: str, dest: str) -> dict[str, Any]:
        self._refuse_docker("snapshot")
        return await super().snapshot(placement, dirs, snapshot_id, dest)

    async def prepare(self, snapshot: SandboxSnapshot, files: str, dirs: SandboxDirs, spec: SandboxSpec) -> SandboxSpec:
        self._refuse_docker("create")
        return await super().prepare(snapshot, files, dirs, spec)

    async def close(self) -> None:
        for sandbox_id in list(self._actors):
            self._forget(sandbox_id)


__all__ = ["RayPlacedRuntime", "SandboxHost"]
