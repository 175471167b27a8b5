"""Sandboxes placed on Ray nodes: Ray picks a node with the sandbox's cpus, memory and custom
resources, an actor there starts it with an ordinary runtime (``process`` or ``docker``), and every
call reaches it through a relay on that node.

    SandboxConfig(placement="ray", cpus=2, memory="4g", resources={"node_a": 0.01})

One :class:`SandboxHost` actor per sandbox asks Ray for ``num_cpus=spec.cpus`` (0 when unlimited),
``memory=spec.memory`` bytes and ``resources=spec.resources``, so Ray's scheduler chooses the node and
accounts for the sandbox (``node_id=`` pins every sandbox to one node). The actor builds the inner
runtime on its node, starts the sandbox in a directory of that node's own (``node_dir``; the manager
never looks there), and serves the sandbox's :class:`~.relay.Relay`: a TCP endpoint on the node's IP
that pipes each connection, authenticated by a per-sandbox secret, to the agent's unix socket. The
manager's :class:`~rock_envs.sandbox.agent_client.AgentClient` dials ``tcp://ip:port`` with that
secret for sessions, exec, files, jobs and the model tunnel; env workers get a byte pipe of their
own through it. The lifeline goes through the relay too: the manager gone, or the actor or its node
lost, closes the agent's lifeline and the sandbox ends, as on one machine.

Faults: a lost node (or relay) closes every relay connection; the next call raises
:class:`~rock_envs.sandbox.errors.SandboxDiedError` naming the node, and the manager removes the
sandbox (the actor is ended, its resources freed). A start that no node can take within the
timeout raises :class:`~rock_envs.sandbox.errors.SandboxStartError` naming the resources asked for.

Ray must be initialised in the manager's process: ``ray.init(...)`` by the caller, or, when it has
not, ``RAY_ADDRESS`` (``rock-envs serve`` with ``RAY_ADDRESS=ip:port`` in its environment).
Snapshots of Ray-placed sandboxes are refused: their files live on their node.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import tempfile
from typing import Any, ClassVar

from ..errors import InvalidRequestError, SandboxStartError
from ..models import SandboxSnapshot, SandboxSpec
from .base import Placement, Runtime, SandboxDirs

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
NAMESPACE = "rock-envs"
"""The Ray namespace of every SandboxHost actor (``rock-envs-<sandbox id>``), so any driver can find one."""


def default_node_dir() -> str:
    """Where a node keeps its sandboxes' directories: short, since unix socket paths must stay under 108 bytes."""
    return os.path.join(tempfile.gettempdir(), f"rock-envs-node-{os.getuid()}")


def remove_sandbox_dir(base: str) -> None:
    """A sandbox's directory on its node, and the node's folder once it holds no other."""
    shutil.rmtree(base, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(base))


class SandboxHost:
    """The actor on the chosen node: an inner runtime, the one sandbox it started, and its relay."""

    def __init__(self, inner: str, inner_options: dict[str, Any]):
        from . import make_runtime

        self.runtime = make_runtime(inner, **inner_options)
        self.relay: Any = None
        self.base = ""

    async def start(self, sandbox_id: str, spec: dict[str, Any], node_dir: str, timeout: float) -> dict[str, Any]:
        import ray

        from .relay import Relay

        node_id = ray.get_runtime_context().get_node_id()
        self.base = os.path.join(node_dir, node_id[:12], sandbox_id)
        dirs = SandboxDirs(self.base)
        os.makedirs(dirs.root, mode=0o755)
        placement = await self.runtime.start(sandbox_id, SandboxSpec(**spec), dirs, timeout)
        ip = str(ray.util.get_node_ip_address())
        secret = secrets.token_urlsafe(24)
        self.relay = Relay(placement.socket, sandbox_id, secret)
        port = await self.relay.start(ip)
        return {
            "address": f"tcp://{ip}:{port}",
            "secret": secret,
            "root": placement.root,
            "isolation": placement.isolation,
            "extra": placement.extra,
            "node_id": node_id,
            "node_ip": ip,
            "base": self.base,
            "pid": os.getpid(),
        }

    def relay_counts(self) -> dict[str, int]:
        """Connections the relay served, by mode: proof that calls went through it."""
        return dict(self.relay.counts) if self.relay is not None else {}

    async def kill(self, sandbox_id: str, extra: dict[str, Any]) -> None:
        if self.relay is not None:
            await self.relay.close()
        await self.runtime.kill(Placement(sandbox_id, "", "", [], extra))
        await self.runtime.close()
        if self.base:
            await asyncio.to_thread(remove_sandbox_dir, self.base)


class RayPlacedRuntime(Runtime):
    name: ClassVar[str] = "ray"

    def __init__(
        self,
        inner: str = "process",
        inner_options: dict[str, Any] | None = None,
        node_id: str | None = None,
        node_dir: str | None = None,
    ):
        self.inner = inner
        self.inner_options = inner_options or {}
        self.node_id = node_id
        self.node_dir = node_dir or default_node_dir()
        self._actors: dict[str, Any] = {}

    def _options(self, sandbox_id: str, spec: SandboxSpec) -> dict[str, Any]:
        options: dict[str, Any] = {
            "num_cpus": float(spec.cpus or 0),
            "name": f"rock-envs-{sandbox_id}",
            "namespace": NAMESPACE,
            "max_restarts": 0,
            "max_concurrency": 4,
        }
        memory = spec.memory_bytes()
        if memory:
            options["memory"] = memory
        if spec.resources:
            options["resources"] = dict(spec.resources)
        if self.node_id:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(self.node_id, soft=False)
        return options

    async def start(self, sandbox_id: str, spec: SandboxSpec, dirs: SandboxDirs, timeout: float) -> Placement:
        import ray

        if not ray.is_initialized():
            if not os.environ.get("RAY_ADDRESS"):
                raise SandboxStartError(
                    "`Sandbox.start` with Ray placement: Ray is not initialised in this process; "
                    "call `ray.init(address=...)` first, or set RAY_ADDRESS for a server."
                )
            await asyncio.to_thread(ray.init, address=os.environ["RAY_ADDRESS"], log_to_driver=False)
        actor = (
            ray.remote(SandboxHost).options(**self._options(sandbox_id, spec)).remote(self.inner, self.inner_options)
        )
        self._actors[sandbox_id] = actor
        try:
            start: Any = actor.start  # a Ray actor handle's method: `.remote(...)` calls it
            placed = await asyncio.wait_for(
                asyncio.wrap_future(start.remote(sandbox_id, spec.model_dump(), self.node_dir, timeout).future()),
                timeout,
            )
        except asyncio.TimeoutError:
            self._forget(sandbox_id)
            asks = {"CPU": spec.cpus or 0, "memory": spec.memory, **spec.resources}
            raise SandboxStartError(
                f"`Sandbox.start` on Ray: no node took the sandbox within {timeout} s (it asks for {asks}); "
                "check `ray status` for a node with those resources free, or ask for less."
            ) from None
        except Exception as exc:
            self._forget(sandbox_id)
            raise SandboxStartError(
                f"`Sandbox.start` on Ray: the {self.inner} runtime could not start the sandbox on its node: {exc}"
            ) from exc
        extra = {
            "inner": placed["extra"],
            "node_id": placed["node_id"],
            "node_ip": placed["node_ip"],
            "host_pid": placed["pid"],
            "base": placed["base"],
            "actor": f"rock-envs-{sandbox_id}",
        }
        if placed["extra"].get("container"):  # docker: `SandboxInfo.container`, for `docker logs` on the node
            extra["container"] = placed["extra"]["container"]
        where = f" on Ray node {placed['node_id']} ({placed['node_ip']})"
        return Placement(
            sandbox_id,
            placed["address"],
            placed["root"],
            list(placed["isolation"]),
            extra,
            secret=placed["secret"],
            where=where,
        )

    async def relay_counts(self, sandbox_id: str) -> dict[str, int]:
        """Connections the sandbox's relay served, by mode (``agent``, ``worker``, ``refused``)."""
        counts: Any = self._actors[sandbox_id].relay_counts
        return dict(await counts.remote())

    async def kill(self, placement: Placement) -> None:
        actor = self._actors.get(placement.sandbox_id)
        if actor is None:
            return
        try:
            await asyncio.wait_for(actor.kill.remote(placement.sandbox_id, placement.extra.get("inner", {})), 60)
        except Exception:  # the actor (or its node) is gone: what it started went with it
            await self._sweep(placement.extra)
        self._forget(placement.sandbox_id)

    async def _sweep(self, extra: dict[str, Any]) -> None:
        """The directory a lost actor left on its node, removed by a task there if the node is alive
        (Ray fails a task pinned to a dead node at once; a dead node's disk went with it)."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if not extra.get("base") or not extra.get("node_id"):
            return
        pinned = NodeAffinitySchedulingStrategy(str(extra["node_id"]), soft=False)
        task = ray.remote(remove_sandbox_dir).options(num_cpus=0, scheduling_strategy=pinned)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task.remote(str(extra["base"])), 30)

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
                ray.kill(ray.get_actor(record["actor"], namespace=NAMESPACE), no_restart=True)
            except ValueError:  # no such actor any more
                pass
        from . import make_runtime

        inner = make_runtime(self.inner, **self.inner_options)
        await inner.reap({**record.get("inner", {}), "sandbox_id": record.get("sandbox_id")})
        await inner.close()

    def _refuse(self, call: str) -> InvalidRequestError:
        return InvalidRequestError(
            f"`{call}`: snapshots of Ray-placed sandboxes are not supported (their files live on their node, "
            "not the manager's); use placement='local' for sandboxes to snapshot."
        )

    async def snapshot(self, placement: Placement, dirs: SandboxDirs, snapshot_id: str, dest: str) -> dict[str, Any]:
        raise self._refuse("snapshot")

    async def prepare(self, snapshot: SandboxSnapshot, files: str, dirs: SandboxDirs, spec: SandboxSpec) -> SandboxSpec:
        raise self._refuse("create")

    async def close(self) -> None:
        for sandbox_id in list(self._actors):
            self._forget(sandbox_id)


__all__ = ["NAMESPACE", "RayPlacedRuntime", "SandboxHost"]
