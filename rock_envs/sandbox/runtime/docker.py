"""The ``docker`` runtime: one container per sandbox on a Docker engine, through the Docker SDK.

Each container runs the sandbox's agent as its main process (under docker's ``--init``), so a
command costs a message on a unix socket, never a ``docker exec``. The sandbox's host directory is
bind-mounted at ``/sandbox``: the agent listens on ``/sandbox/agent.sock``, which is the host's
``<base>/agent.sock``, and the sandbox works in ``/sandbox/root``. Unix sockets cross network
namespaces, so this works when the caller has no network at all (dockerd runs outside it).

What a container gets (see ``SandboxInfo.isolation`` for what applied):

- never ``--privileged``; every capability dropped and ``no-new-privileges`` set, so root inside
  is root without capabilities (like the ``process`` runtime);
- a pids limit, a memory limit (swap included) and a CPU quota from the spec; ``RLIMIT_CPU``
  from ``cpu_time``;
- ``network_mode="none"`` (only ``lo``) unless ``network=True``, which gives the host's network;
- a read-only image filesystem with private tmpfs ``/tmp`` and ``/dev/shm`` (``read_only=False``
  to let programs write anywhere in the container);
- labels naming its owner, sandbox, host and owning process (see ``containers``).

Leak-proofing, from the inside out: the agent exits when its owner's lifeline socket closes (the
owner exited, crashed or was SIGKILLed), which ends the container, which docker then removes
(``auto_remove``); ``kill`` force-removes it; an ``atexit`` hook removes what this process still
holds; and a new runtime (a restarted server) removes containers labelled with its owner whose
owning process is gone.

The image needs a Python with rock-envs installed (``rock-envs image build``); ``python`` names it
(default ``/opt/rock-envs/bin/python``, where the built images keep it).

Snapshots (commit to a local image): see ``docker_snapshots``.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import socket
import threading
import time
import weakref
from typing import Any

from ..errors import ImageNotFoundError, InvalidRequestError, SandboxStartError
from ..models import SandboxSpec
from . import containers
from .base import Placement, Runtime, SandboxDirs, sandbox_env
from .docker_snapshots import SNAPSHOT_REPOSITORY, DockerSnapshots

MOUNT = "/sandbox"
DEFAULT_IMAGE = "rock-envs:latest"
DEFAULT_PYTHON = "/opt/rock-envs/bin/python"
# Finds the installed ``rock_envs`` without running its ``__init__`` (numpy, pydantic, ...), sends
# stderr to the sandbox's log file, then runs the agent's boot as the process runtime does, in a
# child: under docker's init the first process leads its process group and could not ``setsid``.
BOOT = (
    "import os,sys,types,importlib.util as u\n"
    "fd=os.open(sys.argv.pop(1),os.O_WRONLY|os.O_CREAT|os.O_APPEND,0o600);os.dup2(fd,2);os.dup2(fd,1)\n"
    "r=u.find_spec('rock_envs').submodule_search_locations[0]\n"
    "for n,p in (('rock_envs',r),('rock_envs.sandbox',r+'/sandbox')):\n"
    "    m=types.ModuleType(n);m.__path__=[p];sys.modules[n]=m\n"
    "from rock_envs.sandbox.agent.boot import main\n"
    "c=os.fork()\n"
    "if c==0: main(sys.argv[1:])\n"
    "import signal\n"
    "for s in (signal.SIGTERM,signal.SIGINT,signal.SIGHUP): signal.signal(s,lambda *_: os.kill(c,signal.SIGKILL))\n"
    "while True:\n"
    "    try: os._exit(os.waitstatus_to_exitcode(os.waitpid(c,0)[1])&255)\n"
    "    except InterruptedError: pass\n"
)


class DockerRuntime(DockerSnapshots, Runtime):
    """Runtime options (``runtime_options={"docker": {...}}`` of the manager or ``create_app``):

    ``image``: the image when the spec names none (default ``$ROCK_ENVS_IMAGE`` or ``rock-envs:latest``);
    ``python``: the image's Python with rock-envs; ``client``: a ``docker.DockerClient`` (default
    ``docker.from_env()``, so ``DOCKER_HOST`` picks the engine); ``user``: ``"uid:gid"`` to run as
    (default root when this process is root, else this process's uid:gid, so files in the
    bind-mounted directory stay the caller's); ``read_only``: read-only image filesystem.
    """

    name = "docker"

    def __init__(
        self,
        image: str | None = None,
        python: str = DEFAULT_PYTHON,
        client: Any = None,
        user: str | None = None,
        read_only: bool = True,
        max_concurrency: int = 32,
    ):
        try:
            import docker
        except ImportError as exc:
            raise InvalidRequestError(
                "`runtime='docker'` needs the Docker SDK: pip install 'rock-envs[docker]'."
            ) from exc
        self.image = image or os.environ.get("ROCK_ENVS_IMAGE") or DEFAULT_IMAGE
        self.python = python
        self.user = user if user is not None else (None if os.geteuid() == 0 else f"{os.getuid()}:{os.getgid()}")
        self.read_only = read_only
        self.own_client = client is None
        try:
            self.client = client or docker.from_env(max_pool_size=max_concurrency, timeout=120)
        except docker.errors.DockerException as exc:
            raise SandboxStartError(
                f"`Sandbox.start`: no Docker engine answers ({exc}); start one or set DOCKER_HOST."
            ) from exc
        self.host = socket.gethostname()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_concurrency, thread_name_prefix="rock-envs-docker")
        self.live: dict[str, str] = {}  # container id -> sandbox id
        self.lock = threading.Lock()
        self.swept: set[str] = set()
        _LIVE.add(self)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    # ---- start -------------------------------------------------------------------------------

    def _create(self, sandbox_id: str, spec: SandboxSpec, dirs: SandboxDirs, owner: str) -> tuple[str, list[str]]:
        import docker.errors

        if owner not in self.swept:
            self.swept.add(owner)
            self.sweep(owner)
        root = "/" if spec.writable_root else f"{MOUNT}/root"
        command = [
            self.python,
            "-I",
            "-c",
            BOOT,
            f"{MOUNT}/agent.log",
            "--socket",
            f"{MOUNT}/agent.sock",
            "--root",
            root,
            "--state",
            MOUNT,
            "--rlimit",
            "core=0",
            "--own-pids",
        ]
        if spec.writable_root:
            command.append("--writable-root")
        if spec.cpu_time:
            command += ["--rlimit", f"cpu={spec.cpu_time}"]
        isolation = ["container", "no-capabilities"]
        options: dict[str, Any] = {}
        if spec.memory is not None:
            options["mem_limit"] = options["memswap_limit"] = spec.memory_bytes()
            isolation.append("memory")
        if spec.pids_limit:
            options["pids_limit"] = spec.pids_limit
            isolation.append("pids")
        if spec.cpus:
            options["nano_cpus"] = int(spec.cpus * 1e9)
            isolation.append("cpus")
        if not spec.network:
            isolation.append("no-network")
        if spec.writable_root:
            isolation.append("writable-root")
        elif self.read_only:
            options["read_only"] = True
            options["tmpfs"] = {"/tmp": "rw,nosuid,nodev,mode=1777", "/dev/shm": "rw,nosuid,nodev,mode=1777"}
            isolation.append("readonly-image")
        container = None
        labels = {
            containers.label("owner"): owner,
            containers.label("sandbox"): sandbox_id,
            containers.label("host"): self.host,
            containers.label("manager"): containers.manager_label(),
            **{containers.label("user." + k): v for k, v in spec.labels.items()},
        }
        try:
            # create + start, never ``containers.run``: that one pulls a missing image
            container = self.client.containers.create(
                spec.image or self.image,
                command,
                detach=True,
                init=True,
                auto_remove=True,
                name=f"rock-envs-{sandbox_id}",
                labels=labels,
                user=self.user,
                working_dir=root,
                environment=sandbox_env(
                    spec, self.python, home="/root" if spec.writable_root else root, lang="C.UTF-8"
                ),
                network_mode="host" if spec.network else "none",
                volumes={dirs.base: {"bind": MOUNT, "mode": "rw"}},
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                privileged=False,
                stdin_open=False,
                **options,
            )
            with self.lock:
                self.live[container.id] = sandbox_id
            container.start()
        except docker.errors.ImageNotFound as exc:
            raise ImageNotFoundError(
                f"`Sandbox.start`: image {spec.image or self.image!r} is not in the Docker engine ({exc.explanation}); "
                "build one with `rock-envs image build` (nothing is ever pulled)."
            ) from exc
        except docker.errors.APIError as exc:
            if container is not None:
                self._remove(container.id)
            raise SandboxStartError(f"`Sandbox.start`: the Docker engine refused the container: {exc}.") from exc
        return container.id, isolation

    async def start(self, sandbox_id: str, spec: SandboxSpec, dirs: SandboxDirs, timeout: float) -> Placement:
        if self.user is not None:  # the container's user must be able to make its socket and files
            os.chmod(dirs.base, 0o755)
            uid, _, gid = self.user.partition(":")
            for path in (dirs.base, dirs.root):
                os.chown(path, int(uid), int(gid or uid))
        owner = containers.owner_of(dirs)
        deadline = time.monotonic() + timeout
        cid, isolation = await self._run(self._create, sandbox_id, spec, dirs, owner)
        placement = Placement(
            sandbox_id,
            dirs.socket,
            "/" if spec.writable_root else f"{MOUNT}/root",
            isolation,
            {"container": cid, "owner": owner, "host": self.host},
        )
        try:
            await self._wait_ready(cid, dirs, deadline, timeout)
        except BaseException:
            await self.kill(placement)
            raise
        return placement

    async def _wait_ready(self, cid: str, dirs: SandboxDirs, deadline: float, timeout: float) -> None:
        checked = time.monotonic()
        while True:
            if os.path.exists(dirs.socket) and await _connects(dirs.socket):
                return
            now = time.monotonic()
            if now > deadline:
                raise SandboxStartError(
                    f"`Sandbox.start`: the container's agent was not ready after {timeout} s; "
                    f"raise `startup_timeout` or see {dirs.log}."
                )
            if now - checked > 0.5:
                checked = now
                status = await self._run(self._status, cid)
                if status not in ("created", "running"):
                    why = _tail(dirs.log) or f"the container is {status}"
                    raise SandboxStartError(f"`Sandbox.start`: the container's agent failed to start: {why}")
            await asyncio.sleep(0.005)

    def _status(self, cid: str) -> str:
        import docker.errors

        try:
            return str(self.client.containers.get(cid).status)
        except docker.errors.NotFound:
            return "gone"

    # ---- kill, reap, sweep -------------------------------------------------------------------

    def _remove(self, cid: str) -> None:
        import docker.errors

        try:
            container = self.client.containers.get(cid)
        except docker.errors.NotFound:
            container = None
        from_snapshot = container is not None and str(container.attrs["Config"]["Image"]).startswith(
            SNAPSHOT_REPOSITORY + ":"
        )
        if container is not None:
            containers.ignore_gone(container.remove, force=True)
            try:  # auto_remove may still be at it: wait until it is really gone
                container.wait(timeout=30, condition="removed")
            except (docker.errors.NotFound, docker.errors.APIError):
                pass
            except Exception:  # a read timeout: it is dead (force), only not yet deleted
                pass
        with self.lock:
            self.live.pop(cid, None)
        if from_snapshot:
            self._prune_snapshot_images()

    async def kill(self, placement: Placement) -> None:
        cid = placement.extra.get("container")
        if cid:
            await self._run(self._remove, cid)

    def kill_container(self, cid: str) -> None:
        """``docker kill``: the sandbox dies as if it crashed (its owner finds out by the closed socket)."""
        import docker.errors

        try:
            self.client.containers.get(cid).kill()
        except (docker.errors.NotFound, docker.errors.APIError):
            pass

    async def reap(self, record: dict[str, Any]) -> None:
        await self._run(self._reap_sync, record)

    def _reap_sync(self, record: dict[str, Any]) -> None:
        filters = {"label": [f"{containers.label('sandbox')}={record.get('sandbox_id')}"]}
        if record.get("owner"):
            filters["label"].append(f"{containers.label('owner')}={record['owner']}")
        for container in self.client.api.containers(all=True, filters=filters):
            self._remove(container["Id"])
        if record.get("owner"):
            self.sweep(str(record["owner"]))

    def sweep(self, owner: str) -> int:
        """Remove this host's containers labelled with ``owner`` whose owning process is gone."""
        filters = {"label": [f"{containers.label('owner')}={owner}", f"{containers.label('host')}={self.host}"]}
        count = 0
        for container in self.client.api.containers(all=True, filters=filters):  # no inspect: they may vanish
            cid, labels = container["Id"], container.get("Labels") or {}
            if cid in self.live or containers.manager_alive(labels.get(containers.label("manager"), "")):
                continue
            self._remove(cid)
            count += 1
        return count

    def remove_all_sync(self) -> None:
        with self.lock:
            cids = list(self.live)
        for cid in cids:
            try:
                self._remove(cid)
            except Exception:
                pass

    async def close(self) -> None:
        await self._run(self.remove_all_sync)
        self.pool.shutdown(wait=False)
        _LIVE.discard(self)
        if self.own_client:
            self.client.close()


async def _connects(path: str) -> bool:
    try:
        _, writer = await asyncio.open_unix_connection(path)
    except OSError:
        return False
    writer.close()
    return True


def _tail(path: str, size: int = 2000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(path) - size))
            return fh.read().decode(errors="replace").strip()
    except OSError:
        return ""


_LIVE: weakref.WeakSet[DockerRuntime] = weakref.WeakSet()


@atexit.register
def _remove_at_exit() -> None:
    for runtime in list(_LIVE):
        runtime.remove_all_sync()


__all__ = ["DockerRuntime"]
