"""Sandbox snapshots on disk: what every manager on one runtime dir shares.

Layout::

    RUNTIME_DIR/snapshots/<id>/snapshot.json   the SandboxSnapshot
    RUNTIME_DIR/snapshots/<id>/root/           the sandbox's directory tree, as it was
    RUNTIME_DIR/snapshots/<id>/checkpoint/     memory=True: the processes' checkpoint (CRIU images)

A snapshot outlives the sandbox it was taken from and the manager that took it: an embedded SDK (a
manager per ``Sandbox``) and a restarted server find it by id. Files are copied with ``cp -a``
(reflinks where the filesystem has them), never moved, so a snapshot is independent of every
sandbox made from it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess

from .errors import SandboxError, SnapshotNotFoundError
from .models import SandboxSnapshot


async def copy_tree(src: str, dst: str) -> int:
    """Copy the contents of directory ``src`` into ``dst`` (made if missing); the bytes copied."""
    os.makedirs(dst, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        "cp", "-a", "--reflink=auto", "--", f"{src}/.", dst, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise SandboxError(f"copying {src} to {dst} failed: {err.decode(errors='replace').strip()[:500]}")
    return await asyncio.to_thread(tree_size, dst)


def tree_size(path: str) -> int:
    total = 0
    for base, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total


class SnapshotStore:
    """The snapshots under ``path`` (``RUNTIME_DIR/snapshots``)."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(path, mode=0o700, exist_ok=True)

    @staticmethod
    def new_id() -> str:
        return "snap-" + secrets.token_hex(6)

    def dir(self, snapshot_id: str) -> str:
        return os.path.join(self.path, snapshot_id)

    def root(self, snapshot_id: str) -> str:
        return os.path.join(self.dir(snapshot_id), "root")

    def save(self, snapshot: SandboxSnapshot) -> None:
        tmp = os.path.join(self.dir(snapshot.id), ".snapshot.json.tmp")
        with open(tmp, "w") as fh:
            fh.write(snapshot.model_dump_json())
        os.replace(tmp, os.path.join(self.dir(snapshot.id), "snapshot.json"))

    def get(self, snapshot_id: str, call: str) -> SandboxSnapshot:
        path = os.path.join(self.dir(os.path.basename(snapshot_id)), "snapshot.json")
        try:
            with open(path) as fh:
                return SandboxSnapshot.model_validate(json.load(fh))
        except (OSError, ValueError):
            raise SnapshotNotFoundError(
                f"`{call}`: no sandbox snapshot {snapshot_id!r} here; it was deleted or never taken "
                "(list them with `rock-envs sandbox snapshot ls`)."
            ) from None

    def list(self) -> list[SandboxSnapshot]:
        out = []
        for name in sorted(os.listdir(self.path)):
            try:
                out.append(self.get(name, "list_snapshots"))
            except SnapshotNotFoundError:
                continue  # being written or deleted right now
        return sorted(out, key=lambda s: s.created_at)

    def forget(self, snapshot_id: str) -> None:
        shutil.rmtree(self.dir(snapshot_id), ignore_errors=True)
