"""Collect a command's stdout and stderr: a size cap per stream, and an optional live callback."""

from __future__ import annotations

import os
import signal
from typing import Callable

OnChunk = Callable[[str, bytes], None]


class Output:
    """Bytes of one command's two streams, capped at ``limit`` bytes each (the rest is counted, not kept)."""

    def __init__(self, limit: int, on_chunk: OnChunk | None = None):
        self.limit = limit
        self.on_chunk = on_chunk
        self.data = {"stdout": bytearray(), "stderr": bytearray()}
        self.truncated = False

    def feed(self, stream: str, chunk: bytes) -> None:
        if not chunk:
            return
        buf = self.data[stream]
        room = self.limit - len(buf)
        if room < len(chunk):
            self.truncated = True
        if room > 0:
            buf += chunk[:room]
            if self.on_chunk is not None:  # streamed bytes obey the same cap
                self.on_chunk(stream, chunk[:room])

    def text(self, stream: str) -> str:
        return self.data[stream].decode("utf-8", errors="replace")


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tree() -> tuple[dict[int, list[int]], dict[int, int]]:
    """Every process's children and process group, read from /proc."""
    children: dict[int, list[int]] = {}
    groups: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                raw = fh.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        pid, ppid, pgid = int(name), int(fields[1]), int(fields[2])
        children.setdefault(ppid, []).append(pid)
        groups[pid] = pgid
    return children, groups


def descendants(parent: int, tree: tuple[dict[int, list[int]], dict[int, int]] | None = None) -> set[int]:
    """Every process below ``parent`` (children, their children, ...)."""
    children, _ = tree or _tree()
    found: set[int] = set()
    stack = list(children.get(parent, []))
    while stack:
        pid = stack.pop()
        found.add(pid)
        stack.extend(children.get(pid, []))
    return found


def child_groups(parent: int) -> set[int]:
    """Process groups of every descendant of ``parent`` (read from /proc), except ``parent``'s own."""
    tree = _tree()
    groups = tree[1]
    own = groups.get(parent)
    return {groups[pid] for pid in descendants(parent, tree) if groups.get(pid) not in (None, own)}
