"""ROCK's sandboxes on rock-envs ones: a ROCK id (the client's own, or one made here) per rock-envs
sandbox, the phases ``get_status`` shows while it starts, and what is left of those that stopped.

A ROCK sandbox is a rock-envs sandbox with a private writable root view (``writable_root``), its
own network namespace, ROCK's memory and CPU asks, and ``auto_clear_time_minutes`` as its idle TTL.
Its image is looked up in the server's ``--image-map`` and never pulled: a missing one fails in the
``image_pull`` phase at once, naming the image and how to build it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Optional

from ... import models as m
from ...errors import ImageNotFoundError, SandboxError, SandboxNotFoundError
from ...local import LocalSandboxAPI
from ..limits import Quota
from .envelope import BAD_REQUEST, INTERNAL_ERROR, WireError
from .models import StartRequest

START_WAIT = 30.0  # seconds start_async waits for the sandbox, so the client's first poll finds it alive
TOMBSTONES = 4096  # stopped sandboxes remembered for get_status(include_all_states=True)


@dataclass(frozen=True)
class RockWireConfig:
    """How ``rock-envs serve`` answers ROCK's wire."""

    runtime: str = "process"
    """The runtime of every ROCK sandbox: ``process`` or ``docker``."""
    image_map: dict[str, str] = field(default_factory=dict)
    """ROCK image name -> local image (``--image-map SRC=DST``); others are used as named (docker)."""
    session_timeout: float = 240.0
    """Seconds a ``run_in_session`` with ``timeout: null`` may run: below the client's 300 s read timeout."""
    idle_session_timeout: float = 300.0
    """Seconds after which an idle session named ``bash-<digits>`` (the client's own, never closed) is reaped."""
    pids_limit: int = 8192
    """Processes per ROCK sandbox: room for well over 1,024 sessions."""


@dataclass
class RockSandbox:
    rock_id: str
    request: StartRequest
    owner: dict[str, Optional[str]]
    image: str
    sid: Optional[str] = None
    state: str = "pending"
    phases: dict[str, dict[str, str]] = field(
        default_factory=lambda: {
            "image_pull": {"status": "running", "message": ""},
            "docker_run": {"status": "waiting", "message": ""},
        }
    )
    task: Optional[asyncio.Task[None]] = None
    created: float = field(default_factory=time.time)

    @property
    def failed(self) -> bool:
        return any(phase["status"] == "failed" for phase in self.phases.values())


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class Registry:
    def __init__(self, api: LocalSandboxAPI, config: RockWireConfig, quota: Quota):
        self.api, self.config, self.quota = api, config, quota
        self.live: dict[str, RockSandbox] = {}
        self.gone: OrderedDict[str, RockSandbox] = OrderedDict()
        self.host = socket.gethostname()

    # ---- start ---------------------------------------------------------------------------------

    def spec_for(self, req: StartRequest) -> m.SandboxSpec:
        if req.image_os.lower() != "linux":
            raise WireError(f"`start_async`: image_os {req.image_os!r} is not supported here; only 'linux'.")
        try:
            memory = m.parse_size(req.memory)
        except ValueError as exc:
            raise WireError(f"`start_async`: memory {req.memory!r}: {exc}.") from None
        if memory > _host_memory():
            raise WireError(
                f"`start_async`: memory {req.memory!r} is more than this host has "
                f"({_host_memory() >> 20} MiB); ask for less, e.g. memory='8g'."
            )
        minutes = req.auto_clear_time_minutes if req.auto_clear_time_minutes is not None else req.auto_clear_time
        image = self.config.image_map.get(req.image, req.image)
        return m.SandboxSpec(
            runtime="docker" if self.config.runtime == "docker" else "process",
            image=image if self.config.runtime == "docker" else None,
            cpus=req.limit_cpus or req.cpus,
            memory=max(memory, 16 << 20),
            pids_limit=self.config.pids_limit,
            ttl=min(7 * 24 * 3600, 360 * 60 if minutes is None else minutes * 60),
            writable_root=True,
            labels={"rock.sandbox_id": req.sandbox_id or ""},
        )

    async def start(self, req: StartRequest, owner: dict[str, Optional[str]], authorization: str) -> RockSandbox:
        rock_id = req.sandbox_id or secrets.token_hex(16)
        if rock_id in self.live:
            raise WireError(f"`start_async`: a sandbox {rock_id!r} already exists; stop it or pick another id.")
        spec = self.spec_for(req)
        box = RockSandbox(rock_id, req, owner, req.image)
        self.live[rock_id] = box
        self.gone.pop(rock_id, None)
        box.task = asyncio.create_task(self._create(box, spec, authorization))
        await asyncio.wait({box.task}, timeout=min(START_WAIT, req.startup_timeout or START_WAIT))
        return box

    async def _create(self, box: RockSandbox, spec: m.SandboxSpec, authorization: str) -> None:
        image_note = (
            f"image {spec.image!r}" + (f" (for {box.image!r})" if spec.image != box.image else "") + " is local"
            if spec.runtime == "docker"
            else f"the process runtime runs the host's own system; image {box.image!r} is not used"
        )
        try:
            with self.quota.admit(authorization, spec) as created:
                box.phases["docker_run"]["status"] = "running"
                info = await self.api.create(spec, timeout=min(600.0, box.request.startup_timeout or 120.0))
                created["id"] = info.id
        except ImageNotFoundError as exc:
            box.phases["image_pull"] = {
                "status": "failed",
                "message": f"Failed to pull image {spec.image!r}: {exc.message} Or map it to a local image: "
                f"`rock-envs serve --image-map {box.image}=<local image>`.",
            }
            box.phases["docker_run"]["status"] = "waiting"
            self._bury(box)
            return
        except SandboxError as exc:
            box.phases["image_pull"] = {"status": "success", "message": image_note}
            box.phases["docker_run"] = {"status": "failed", "message": exc.message}
            self._bury(box)
            return
        box.sid, box.state = info.id, "running"
        box.phases = {
            "image_pull": {"status": "success", "message": image_note},
            "docker_run": {"status": "success", "message": f"rock-envs sandbox {info.id} is running"},
        }
        if box.rock_id not in self.live:  # stopped while it started
            await self.api.delete(info.id)

    def _bury(self, box: RockSandbox) -> None:
        box.state = "stopped"
        if self.live.get(box.rock_id) is box:
            del self.live[box.rock_id]
        self.gone[box.rock_id] = box
        while len(self.gone) > TOMBSTONES:
            self.gone.popitem(last=False)

    # ---- lookups -------------------------------------------------------------------------------

    async def find(self, rock_id: str, include_gone: bool = False) -> RockSandbox:
        box = self.live.get(rock_id)
        if box is not None and box.sid is not None:
            try:
                info = await self.api.info(box.sid)
                if info.status == "dead":
                    box.phases["docker_run"] = {"status": "failed", "message": f"sandbox {box.sid} died"}
                    raise SandboxNotFoundError("dead")
            except SandboxNotFoundError:  # reaped after its idle TTL, or died
                self._bury(box)
                box = None
        if box is None:  # stopped ones only when asked for; one that failed to start always (its phases say why)
            box = self.gone.get(rock_id)
            if box is not None and not include_gone and not box.failed:
                box = None
        if box is None:
            raise WireError(
                f"Sandbox {rock_id} not found: it was stopped, idle past its auto_clear_time, or never started."
            )
        return box

    async def sid(self, rock_id: str, op: str) -> str:
        """The rock-envs id of a running ROCK sandbox (waiting for one still starting)."""
        box = self.live.get(rock_id)
        if box is not None and box.task is not None and not box.task.done():
            await asyncio.shield(box.task)
        box = await self.find(rock_id)
        if box.sid is None:
            why = next((p["message"] for p in box.phases.values() if p["status"] == "failed"), "it did not start")
            raise WireError(f"`{op}`: sandbox {rock_id} is not running: {why}", INTERNAL_ERROR)
        return box.sid

    def status(self, box: RockSandbox) -> dict[str, Any]:
        req = box.request
        return {
            "sandbox_id": box.rock_id,
            "status": box.phases,
            "state": box.state,
            "is_alive": box.state == "running",
            "host_name": self.host,
            "host_ip": "127.0.0.1",
            "image": box.image,
            "cpus": float(req.limit_cpus or req.cpus),
            "memory": str(req.memory),
            "port_mapping": {},
            "create_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(box.created)),
            **box.owner,
        }

    # ---- stop ----------------------------------------------------------------------------------

    async def stop(self, rock_id: str, op: str) -> None:
        box = self.live.get(rock_id)
        if box is None:
            raise WireError(f"`{op}`: Sandbox {rock_id} not found (already stopped, or never started).", BAD_REQUEST)
        self._bury(box)
        if box.task is not None and not box.task.done():
            return  # _create deletes it once it is up
        if box.sid is not None:
            try:
                await self.api.delete(box.sid)
            except SandboxNotFoundError:
                pass

    async def close(self) -> None:
        for box in list(self.live.values()):
            if box.task is not None and not box.task.done():
                box.task.cancel()
