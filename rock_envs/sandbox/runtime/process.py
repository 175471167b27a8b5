"""The ``process`` runtime: a sandbox is a process tree on this host, forked from a warm zygote.

What it isolates (as root on Linux; see ``SandboxInfo.isolation`` for what applied):

- pid, mount, ipc and uts namespaces, and a network namespace with only ``lo`` unless
  ``network=True``: the sandbox sees only its own processes and, by default, no network;
- the host's filesystem is read-only inside; ``/tmp`` and ``/dev/shm`` are private tmpfs; only the
  sandbox's own directory is writable, and the other sandboxes' directories are hidden;
- its programs run as root *without capabilities* (empty bounding set, ``no_new_privs``): they
  cannot remount, leave their cgroup, load modules or trace processes outside;
- cgroups cap processes (``pids_limit``: a fork bomb stops there), memory (``memory``: the OOM
  killer acts inside the sandbox) and CPU share (``cpus``); ``cpu_time`` sets ``RLIMIT_CPU``;
- the whole tree dies with the sandbox: killing its pid 1 (forked by the zygote straight into the
  new pid namespace) kills the namespace.

What it does not isolate: it shares the host's kernel, its read-only files (anything world-readable
on the host can be read), its users, and disk space; root without capabilities is still uid 0 for
files it can reach. Not a boundary against a kernel exploit. Use ``docker`` (or a VM) for hostile code.
Without root, or where namespaces or cgroups are missing, it degrades to a process group with
rlimits (``RLIMIT_NPROC``, ``RLIMIT_AS``), which is all ``isolation`` will then list.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any, Literal

from ..agent.boot import BOOTSTRAP
from ..agent.isolate import SEED
from ..errors import SandboxStartError
from ..models import SandboxSnapshot, SandboxSpec
from ..snapshots import copy_tree
from ..state import process_start_time
from . import cgroups
from .base import Placement, Runtime, SandboxDirs, sandbox_env

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def agent_argv(python: str, module: str = "boot") -> list[str]:
    """The command that starts the agent package by path, importing nothing else of rock_envs."""
    return [python, "-I", "-S", "-c", BOOTSTRAP, PACKAGE_PARENT, module]


def _can_unshare() -> bool:
    probe = "import ctypes,os\nos._exit(0 if ctypes.CDLL(None,use_errno=True).unshare(0x20000000|0x00020000)==0 else 1)"
    try:
        return subprocess.run([sys.executable, "-I", "-S", "-c", probe], timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class Zygote:
    """Client of :mod:`rock_envs.sandbox.agent.zygote`: forks sandboxes from a warm Python."""

    def __init__(self, python: str):
        self.python = python
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None

    def _ensure(self) -> socket.socket:
        if self.proc is not None and self.proc.poll() is None and self.sock is not None:
            return self.sock
        self.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen(
            agent_argv(self.python, "zygote") + ["--fd", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        theirs.close()
        self.sock = ours
        return ours

    def spawn(self, spec: dict[str, Any], ready_w: int) -> int:
        with self.lock:
            sock = self._ensure()
            socket.send_fds(sock, [json.dumps(spec).encode()], [ready_w])
            reply = json.loads(sock.recv(65536) or b'{"error": "the zygote exited"}')
        if "error" in reply:
            raise SandboxStartError(f"`Sandbox.start`: the process runtime's zygote failed: {reply['error']}")
        return int(reply["pid"])

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


class ProcessRuntime(Runtime):
    name = "process"

    def __init__(self, isolation: Literal["auto", "none"] = "auto", python: str | None = None):
        self.python = python or sys.executable
        root = os.geteuid() == 0
        self.namespaces = isolation == "auto" and root and sys.platform == "linux" and _can_unshare()
        self.cgroups = cgroups.Cgroups() if isolation == "auto" and root else None
        self.zygote = Zygote(self.python)

    async def start(self, sandbox_id: str, spec: SandboxSpec, dirs: SandboxDirs, timeout: float) -> Placement:
        if spec.writable_root and not self.namespaces:
            raise SandboxStartError(
                "`Sandbox.start`: `writable_root` on the process runtime needs root on Linux with mount "
                "namespaces (for its private overlay of /), which this host does not give; use runtime='docker'."
            )
        groups: list[cgroups.Group] = []
        if self.cgroups is not None and self.cgroups.available:
            try:
                groups = self.cgroups.create(sandbox_id, spec.pids_limit, spec.memory_bytes(), spec.cpus)
            except OSError as exc:
                raise SandboxStartError(
                    f"`Sandbox.start`: could not set up the sandbox's cgroups ({exc}); "
                    "check the limits (memory, pids_limit, cpus) for this host."
                ) from exc
        rlimits = ["core=0"]
        if spec.cpu_time:
            rlimits.append(f"cpu={spec.cpu_time}")
        if spec.pids_limit and os.geteuid() != 0:
            rlimits.append(f"nproc={spec.pids_limit}")
        if spec.memory and not any(g.controller in ("memory", "v2") for g in groups):
            rlimits.append(f"as={spec.memory_bytes()}")
        root = "/" if spec.writable_root else dirs.root
        home = "/root" if spec.writable_root else dirs.root
        launch = {
            "socket": dirs.socket,
            "root": root,
            "state": dirs.base,
            "env": sandbox_env(spec, self.python, home=home, lang=os.environ.get("LANG", "C.UTF-8")),
            "namespaces": self.namespaces,
            "own_net": self.namespaces and not spec.network,
            "writable_root": spec.writable_root,
            "cgroup": [g.procs for g in groups],
            "rlimit": rlimits,
        }
        ready_r, ready_w = os.pipe()
        try:
            pid = await asyncio.to_thread(self.zygote.spawn, launch, ready_w)
        except BaseException:
            os.close(ready_r)
            cgroups.remove(groups)
            raise
        finally:
            os.close(ready_w)
        extra = {
            "pid": pid,
            "start_time": process_start_time(pid),
            "cgroups": [[g.controller, g.path] for g in groups],
            "writable_root": spec.writable_root,
        }
        placement = Placement(sandbox_id, dirs.socket, root, [], extra)
        try:
            line = await asyncio.wait_for(_read_line(ready_r), timeout)
        except asyncio.TimeoutError:
            await self.kill(placement)
            raise SandboxStartError(
                f"`Sandbox.start`: the agent was not ready after {timeout} s; "
                "raise `startup_timeout` or check the host's load."
            ) from None
        finally:
            os.close(ready_r)
        if line != b"ready":
            await self.kill(placement)
            why = line.decode(errors="replace") or "it exited without a word"
            raise SandboxStartError(f"`Sandbox.start`: the sandbox's agent failed to start: {why}.")
        placement.isolation = self.cgroups.limits(groups) if self.cgroups else []
        return placement

    async def kill(self, placement: Placement) -> None:
        await asyncio.to_thread(self._kill_sync, placement.extra)

    def _kill_sync(self, extra: dict[str, Any]) -> None:
        pid = extra.get("pid")
        if pid and process_start_time(pid) == extra.get("start_time"):
            try:
                os.kill(pid, signal.SIGKILL)  # pid 1 of the sandbox (or its launcher): the namespace goes with it
            except ProcessLookupError:
                pass
        groups = [cgroups.Group(c, p) for c, p in extra.get("cgroups") or []]
        cgroups.remove(groups)

    async def reap(self, record: dict[str, Any]) -> None:
        # A manager killed mid-start may have made the sandbox's cgroups (and forked its processes)
        # before it recorded them: find those by the sandbox's id as well.
        named = self.cgroups.find(str(record.get("sandbox_id", ""))) if self.cgroups else []
        known = [list(g) for g in record.get("cgroups") or []]
        extra = [[g.controller, g.path] for g in named if [g.controller, g.path] not in known]
        await asyncio.to_thread(self._kill_sync, {**record, "cgroups": known + extra})

    # ---- snapshots: the directory tree (base class) and a writable root's overlay layer ----------

    async def snapshot(self, placement: Placement, dirs: SandboxDirs, snapshot_id: str, dest: str) -> dict[str, Any]:
        facts = await super().snapshot(placement, dirs, snapshot_id, dest)
        if placement.extra.get("writable_root"):  # its changes to /: the overlay's upper layer, seen
            # through the sandbox's own root (the layer's tmpfs lives only in its mount namespace)
            upper = f"/proc/{placement.extra['pid']}/root{dirs.base}/rootfs/upper"
            facts["size"] += await copy_tree(upper, os.path.join(dest, "rootfs"))
        return facts

    async def prepare(self, snapshot: SandboxSnapshot, files: str, dirs: SandboxDirs, spec: SandboxSpec) -> SandboxSpec:
        spec = await super().prepare(snapshot, files, dirs, spec)
        layer = os.path.join(os.path.dirname(files), "rootfs")
        if os.path.isdir(layer):  # the agent's boot copies it into the new overlay (isolate.SEED)
            await copy_tree(layer, os.path.join(dirs.base, SEED))
        return spec

    async def close(self) -> None:
        await asyncio.to_thread(self.zygote.close)


async def _read_line(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    buf = bytearray()
    while not buf.endswith(b"\n"):
        fut: asyncio.Future[bytes] = loop.create_future()

        def readable(fut: asyncio.Future[bytes] = fut) -> None:
            if not fut.done():
                try:
                    fut.set_result(os.read(fd, 4096))
                except OSError as exc:
                    fut.set_exception(exc)

        loop.add_reader(fd, readable)
        try:
            chunk = await fut
        finally:
            loop.remove_reader(fd)
        if not chunk:
            break
        buf += chunk
    return bytes(buf).strip()
