"""The runtime directory: sandbox dirs and one state file per sandbox, so a later manager can clean up.

Layout::

    RUNTIME_DIR/owner                 a stable id for managers using this dir (docker labels use it)
    RUNTIME_DIR/state/<id>.json       {"manager": {pid, start_time}, "record": runtime.record(...)}
    RUNTIME_DIR/sandboxes/<id>/       root/ (the sandbox's files), agent.sock, agent's spool files

A state file whose manager process is no longer alive (pid gone, or reused by another process)
belongs to a crashed manager: the next manager to start reaps it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from typing import Any, Iterator


def default_runtime_dir() -> str:
    if os.geteuid() == 0 and os.path.isdir("/run"):
        return "/run/rock-envs"
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return os.path.join(base, f"rock-envs-{os.getuid()}")


def process_start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
        return int(raw[raw.rfind(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


class StateDir:
    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.states = os.path.join(self.path, "state")
        self.sandboxes = os.path.join(self.path, "sandboxes")
        os.makedirs(self.states, mode=0o700, exist_ok=True)
        os.makedirs(self.sandboxes, mode=0o711, exist_ok=True)
        owner_file = os.path.join(self.path, "owner")
        if not os.path.exists(owner_file):
            with open(owner_file, "w") as fh:
                fh.write(secrets.token_hex(8))
        with open(owner_file) as fh:
            self.owner = fh.read().strip()

    def sandbox_dir(self, sandbox_id: str) -> str:
        return os.path.join(self.sandboxes, sandbox_id)

    def save(self, sandbox_id: str, record: dict[str, Any]) -> None:
        me = {"pid": os.getpid(), "start_time": process_start_time(os.getpid())}
        tmp = os.path.join(self.states, f".{sandbox_id}.tmp")
        with open(tmp, "w") as fh:
            json.dump({"manager": me, "record": record}, fh)
        os.replace(tmp, os.path.join(self.states, f"{sandbox_id}.json"))

    def forget(self, sandbox_id: str) -> None:
        try:
            os.unlink(os.path.join(self.states, f"{sandbox_id}.json"))
        except FileNotFoundError:
            pass
        shutil.rmtree(self.sandbox_dir(sandbox_id), ignore_errors=True)

    def orphans(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """State records whose manager is dead (never this process's own)."""
        for name in sorted(os.listdir(self.states)):
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.states, name)) as fh:
                    data = json.load(fh)
                manager = data["manager"]
            except (OSError, ValueError, KeyError):
                continue
            pid = manager.get("pid")
            alive = isinstance(pid, int) and process_start_time(pid) == manager.get("start_time") is not None
            if not alive:
                yield name[: -len(".json")], data.get("record") or {}
