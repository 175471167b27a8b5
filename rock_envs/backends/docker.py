"""The docker backend: EnvWorkers inside containers, one sandbox (container) per worker.

Each worker is a sandbox of the ``docker`` runtime, made by an embedded sandbox manager that this
group runs on a private event loop thread. The sandbox's agent starts ``python -m rock_envs.worker
--fd N`` inside the container and hands the other end of the worker's socketpair back over its unix
socket (``SCM_RIGHTS`` works across the container boundary), so steps then flow straight between
this process and the worker, framed exactly as for the subprocess backend, with no relay and no
network. The sandbox layer does the rest: limits, labels, leak-proofing (containers die with this
process), and the image check.

``make_vec(..., backend="docker", image=..., envs_per_container=...)``: the default packs the envs
onto as many containers as there are cores; ``envs_per_container=1`` gives each env its own
container and filesystem. ``cpus`` and ``memory`` limit each container. A mixed batch whose env
specs name different images (and no ``image=`` of the caller's) gets ``images``, worker ``w``'s
image each: its envs all have that image (``rock_envs.vector.blocks``), and a restarted worker
comes back on it. ``kill(w)`` is a ``docker kill`` of worker ``w``'s container.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from rock_envs.backends.options import DockerOptions
from rock_envs.backends.sockets import SocketWorkers
from rock_envs.core.loop_thread import LoopThread

STARTUP_TIMEOUT = 120.0


class DockerGroup(SocketWorkers):
    name = "docker"

    def __init__(
        self,
        num_workers: int,
        options: DockerOptions | None = None,
        runtime_dir: str | None = None,
        images: list[str | None] | None = None,
    ):
        super().__init__(num_workers)
        self.options = options or DockerOptions()
        self.image = self.options.image
        self.spec = self.options.sandbox_spec()
        if images is not None and len(images) != num_workers:
            raise ValueError(f"DockerGroup: {len(images)} images for {num_workers} workers")
        self.images = images or [self.image] * num_workers
        """Worker w's image (None: the engine's default for rock-envs, `DockerRuntime.image`)."""
        client = self.options.docker_client
        self.runtime_options = {"client": client} if client is not None else {}
        self.runtime_dir = runtime_dir
        self._loop: LoopThread | None = None
        self._api: Any = None  # a LocalSandboxAPI over a manager of this group's own
        self._sandboxes: list[str | None] = [None] * num_workers
        self._containers: list[str] = [""] * num_workers

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        from rock_envs.sandbox.local import LocalSandboxAPI
        from rock_envs.sandbox.manager import SandboxManager

        self._loop = LoopThread("rock-envs-docker")
        options = {"docker": {"image": self.image, **self.runtime_options}}
        manager = SandboxManager(self.runtime_dir, runtime_options=options, allowed_runtimes=("docker",))
        self._api = LocalSandboxAPI(manager)
        try:
            socks = self._loop.run(self._open_many(list(range(self.num_workers))))
        except BaseException:
            self.close()
            raise
        for w, (sid, sock) in socks.items():
            self._sandboxes[w] = sid
            self._attach(w, sock)

    async def _open_many(self, workers: list[int]) -> dict[int, tuple[str, Any]]:
        await self._api.manager.start()  # reaps an earlier crashed group's leftovers once, first
        results = await asyncio.gather(*(self._open(w) for w in workers), return_exceptions=True)
        opened = {w: r for w, r in zip(workers, results) if not isinstance(r, BaseException)}
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            for _, sock in opened.values():
                sock.close()
            raise errors[0]
        return opened

    async def _open(self, w: int) -> tuple[str, Any]:
        from rock_envs.sandbox.models import WorkerRequest

        spec = self.spec if self.images[w] == self.image else self.spec.model_copy(update={"image": self.images[w]})
        info = await self._api.create(spec, STARTUP_TIMEOUT)
        self._sandboxes[w], self._containers[w] = info.id, info.container or ""
        return info.id, await self._api.open_worker_socket(info.id, WorkerRequest())

    def restart(self, w: int) -> None:
        assert self._loop is not None
        self._stop(w)
        sid, sock = self._loop.run(self._open(w))
        self._sandboxes[w] = sid
        self._attach(w, sock)

    def _close(self) -> None:
        self._close_workers()
        if self._loop is not None:
            if self._api is not None:
                try:
                    self._loop.run(self._api.manager.close(), timeout=120)
                except Exception:  # noqa: BLE001 - containers die with their lifeline anyway
                    pass
            self._loop.close()
            self._loop = None

    def _gone_reason(self, w: int) -> str:
        return (
            f"the worker in container {self._container(w)[:12] or '?'} went away "
            "(the container was killed, or the worker exited)"
        )

    def _stop(self, w: int) -> None:
        self._drop(w)
        sid, self._sandboxes[w], self._containers[w] = self._sandboxes[w], None, ""
        if sid is not None and self._loop is not None:
            try:
                self._loop.run(self._api.delete(sid), timeout=60)
            except Exception:  # noqa: BLE001 - already gone
                pass

    # ---- faults and facts ---------------------------------------------------------------------

    def _container(self, w: int) -> str:
        return self._containers[w]

    def kill(self, w: int) -> None:
        """``docker kill`` of worker ``w``'s container, as a crash would end it."""
        import docker
        import docker.errors

        if cid := self._container(w):
            try:
                (self.runtime_options.get("client") or docker.from_env()).containers.get(cid).kill()
            except (docker.errors.NotFound, docker.errors.APIError):
                pass  # already gone

    def describe(self, w: int) -> dict[str, Any]:
        return {
            "sandbox": self._sandboxes[w],
            "container": self._container(w),
            "image": self.images[w],
            "host": os.uname().nodename,
        }


__all__ = ["DockerGroup"]
