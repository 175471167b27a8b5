"""Wipe a sandbox back to new, for a warm pool's next user: every process but the agent's own
lineage, every file of its working directory, ``/tmp`` and ``/dev/shm``; then check that nothing is
left. Only a sandbox in its own pid namespace can be wiped (elsewhere a process could hide in the
host's), so ``reset`` there answers not clean and the manager removes the sandbox instead.

Standard library only.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from typing import Any

SCRATCH = ("/tmp", "/dev/shm")


def _others() -> list[int]:
    """Live processes of the namespace other than init, the agent and the agent's parent."""
    spare = {1, os.getpid(), os.getppid()}
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in spare:
            try:
                with open(f"/proc/{name}/stat") as fh:
                    state = fh.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue  # gone meanwhile
            if state not in ("Z", "X"):  # a zombie is dead already; its parent or init reaps it
                found.append(int(name))
    return found


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        return [line.split()[4].replace("\\040", " ") for line in fh]


def _empty(path: str) -> list[str]:
    """Remove everything inside ``path`` but the mounts the sandbox is made of (its own directory and
    a Python bound back under /tmp, see :mod:`.isolate`), and the directories that hold them; what
    could not be removed."""
    keep = [p for p in _mount_points() if p.startswith(path.rstrip("/") + "/")]
    try:
        entries = [e for e in os.scandir(path) if not any(k == e.path or k.startswith(e.path + "/") for k in keep)]
    except OSError:
        return []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass  # reported below, with anything that appeared meanwhile
    return [e.path for e in os.scandir(path) if not any(k == e.path or k.startswith(e.path + "/") for k in keep)]


async def reset(dirs: list[str], own_pid_namespace: bool, within: float = 5.0) -> dict[str, Any]:
    """Kill, wipe ``dirs`` and the scratch dirs, check. The reply's ``clean`` is true only if no
    process and no file is left."""
    if not own_pid_namespace:
        return {"clean": False, "why": "the sandbox has no pid namespace of its own"}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while others := _others():
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if loop.time() > deadline:
            return {"clean": False, "why": f"processes survived SIGKILL: {others[:10]}"}
        await asyncio.sleep(0.01)
    left = [p for path in (*dirs, *SCRATCH) for p in _empty(path)]
    if left:
        return {"clean": False, "why": f"files could not be removed: {left[:10]}"}
    return {"clean": True}
