"""Per-sandbox cgroups (v2, or the v1 ``pids``/``memory``/``cpu`` hierarchies) for limits that hold for root.

``RLIMIT_NPROC`` counts per real uid and root ignores it, so a fork bomb run as root is stopped
here, by ``pids.max``; a memory hog by the memory limit (the kernel's OOM killer picks inside the
group). Groups are made under this process's own cgroup, so outer limits still apply.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

ROOT = "/sys/fs/cgroup"


@dataclass
class Group:
    controller: str
    path: str

    @property
    def procs(self) -> str:
        return os.path.join(self.path, "cgroup.procs")


def _own_path(controller: str) -> str | None:
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                _, names, path = line.rstrip("\n").split(":", 2)
                if controller in names.split(",") or (controller == "" and names == ""):
                    return path
    except OSError:
        return None
    return None


def _v2_base() -> str | None:
    """The v2 directory we may make groups in, if pids and memory are delegated to it."""
    for mount in (ROOT, os.path.join(ROOT, "unified")):
        if os.path.exists(os.path.join(mount, "cgroup.controllers")):
            own = _own_path("")
            base = os.path.join(mount, (own or "/").lstrip("/"))
            try:
                with open(os.path.join(mount, "cgroup.controllers")) as fh:
                    if {"pids", "memory"} <= set(fh.read().split()) and os.access(base, os.W_OK):
                        return base
            except OSError:
                return None
    return None


class Cgroups:
    """Makes, limits and removes the groups of one sandbox. ``available`` says if this host allows any."""

    def __init__(self, parent_name: str = "rock-envs"):
        self.parent_name = parent_name
        self.v2 = _v2_base()
        self.v1: dict[str, str] = {}
        if self.v2 is None:
            for ctl in ("pids", "memory", "cpu"):
                mount = os.path.join(ROOT, ctl)
                own = _own_path(ctl)
                base = os.path.join(mount, (own or "/").lstrip("/"))
                if own is not None and os.path.isdir(base) and os.access(base, os.W_OK):
                    self.v1[ctl] = base

    @property
    def available(self) -> bool:
        return self.v2 is not None or bool(self.v1)

    def create(self, sandbox_id: str, pids: int | None, memory: int | None, cpus: float | None) -> list[Group]:
        groups: list[Group] = []
        try:
            if self.v2 is not None:
                parent = os.path.join(self.v2, self.parent_name)
                os.makedirs(parent, exist_ok=True)
                _write(os.path.join(self.v2, "cgroup.subtree_control"), "+pids +memory +cpu", quiet=True)
                _write(os.path.join(parent, "cgroup.subtree_control"), "+pids +memory +cpu", quiet=True)
                path = os.path.join(parent, sandbox_id)
                os.mkdir(path)
                groups.append(Group("v2", path))
                if pids:
                    _write(os.path.join(path, "pids.max"), str(pids))
                if memory:
                    _write(os.path.join(path, "memory.max"), str(memory))
                    _write(os.path.join(path, "memory.swap.max"), "0", quiet=True)
                if cpus:
                    _write(os.path.join(path, "cpu.max"), f"{max(1000, int(cpus * 100000))} 100000", quiet=True)
                return groups
            for ctl, base in self.v1.items():
                path = os.path.join(base, self.parent_name, sandbox_id)
                os.makedirs(path)
                groups.append(Group(ctl, path))
                if ctl == "pids" and pids:
                    _write(os.path.join(path, "pids.max"), str(pids))
                elif ctl == "memory" and memory:
                    _write(os.path.join(path, "memory.limit_in_bytes"), str(memory))
                    _write(os.path.join(path, "memory.memsw.limit_in_bytes"), str(memory), quiet=True)
                elif ctl == "cpu" and cpus:
                    _write(os.path.join(path, "cpu.cfs_period_us"), "100000")
                    _write(os.path.join(path, "cpu.cfs_quota_us"), str(max(1000, int(cpus * 100000))))
            return groups
        except OSError:
            remove(groups)
            raise

    def find(self, sandbox_id: str) -> list[Group]:
        """The groups ``create`` made for ``sandbox_id``, if they exist."""
        if not sandbox_id:
            return []
        if self.v2 is not None:
            candidates = [("v2", os.path.join(self.v2, self.parent_name, sandbox_id))]
        else:
            candidates = [(ctl, os.path.join(base, self.parent_name, sandbox_id)) for ctl, base in self.v1.items()]
        return [Group(ctl, path) for ctl, path in candidates if os.path.isdir(path)]

    def limits(self, groups: list[Group]) -> list[str]:
        names = {"v2": ["cgroup-pids", "cgroup-memory", "cgroup-cpu"]}
        return [n for g in groups for n in names.get(g.controller, [f"cgroup-{g.controller}"])]


def _write(path: str, value: str, quiet: bool = False) -> None:
    try:
        with open(path, "w") as fh:
            fh.write(value)
    except OSError:
        if not quiet:
            raise


def pids_in(groups: list[Group]) -> set[int]:
    found: set[int] = set()
    for group in groups:
        try:
            with open(group.procs) as fh:
                found.update(int(x) for x in fh.read().split())
        except (OSError, ValueError):
            pass
    return found


def kill_all(groups: list[Group], wait: float = 5.0) -> None:
    """SIGKILL every process in the groups until they are empty (or ``wait`` seconds pass)."""
    deadline = time.monotonic() + wait
    while True:
        pids = pids_in(groups)
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)


def remove(groups: list[Group]) -> None:
    kill_all(groups)
    for group in groups:
        for _ in range(200):
            try:
                os.rmdir(group.path)
                break
            except FileNotFoundError:
                break
            except OSError:  # still busy: the last processes are exiting
                time.sleep(0.005)
