"""Trajectories on disk, so they outlive the server: one JSON Lines file per sandbox, appended as
each call completes (``<runtime_dir>/trajectories/<sandbox_id>.jsonl``).

JSON Lines rather than SQLite: a trajectory is written once per call and read whole, by this server
or by anyone replaying it (the house keeps trajectory records as plain JSON Lines); one append of a
line per call needs no schema, no connection and no lock across processes. A line cut short by a
crash is skipped on reading; calls still waiting when the server died were never completed and are
not there. A partial rollout resumes from its last recorded call: its request and answer are the
conversation so far, and a new sandbox with ``model_service.trajectory_id`` set to the old id appends
its calls to the same file.
"""

from __future__ import annotations

import os
import re

from .models import CallRecord

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class TrajectoryStore:
    def __init__(self, directory: str):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    def _path(self, sandbox_id: str) -> str | None:
        return os.path.join(self.directory, sandbox_id + ".jsonl") if SAFE_ID.match(sandbox_id) else None

    def append(self, record: CallRecord, trajectory_id: str | None = None) -> None:
        """Append one completed call to the trajectory ``trajectory_id`` (default: its sandbox's)."""
        path = self._path(trajectory_id or record.sandbox_id)
        if path is None:
            return
        line = record.model_dump_json() + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())  # one write of one line: appends of concurrent calls never interleave
        finally:
            os.close(fd)

    def read(self, sandbox_id: str) -> list[CallRecord] | None:
        """The sandbox's completed calls in order, or ``None`` if none was ever stored here."""
        path = self._path(sandbox_id)
        if path is None or not os.path.exists(path):
            return None
        records: dict[int, CallRecord] = {}
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    record = CallRecord.model_validate_json(line)
                except ValueError:  # a line cut short by a crash
                    continue
                records[record.index] = record
        return [records[i] for i in sorted(records)]
