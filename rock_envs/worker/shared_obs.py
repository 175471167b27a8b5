"""Shared observations: the subprocess backend maps one file per worker in /dev/shm, holding one
array per leaf of the observation batch (one for a Box, one per part of a Dict or Tuple of arrays),
and the worker writes its envs' rows there instead of sending them over the socket.

The caller creates and maps the file, the worker maps it and unlinks its name. Both sides map the file with `mmap` and view it as a plain ndarray (not `np.memmap`, whose subclass
hooks cost microseconds on every indexing). A batch whose env ids are consecutive rows is one slice
copy; any other batch is one fancy-index copy.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from rock_envs.core.batching import tree_leaves
from rock_envs.worker.protocol import Batch, Message


@dataclass
class AttachObs(Message):
    """Transport-private request: write array observations into this shared file from now on."""

    path: str
    layout: list[tuple[tuple[int, ...], str]]  # (shape, dtype) of every leaf, in `tree_leaves` order
    rows: dict[int, int]


def shm_path(prefix: str = "rock-envs") -> str:
    """A new, unused name for a shared file of this process: in /dev/shm where there is one."""
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    return os.path.join(folder, f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:12]}")


def unlink_quietly(path: str) -> None:
    """Remove the name `path` if it is still there (the other side may have removed it first)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _offsets(layout: list[tuple[tuple[int, ...], str]]) -> tuple[list[int], int]:
    offsets, size = [], 0
    for shape, dtype in layout:
        size = -(-size // 64) * 64  # each leaf starts cache-line aligned
        offsets.append(size)
        size += int(np.prod(shape)) * np.dtype(dtype).itemsize
    return offsets, max(1, size)


def map_leaves(
    path: str, layout: list[tuple[tuple[int, ...], str]], create: bool
) -> tuple[mmap.mmap, list[np.ndarray]]:
    """Map `path` (created and sized when `create`) as one ndarray per leaf of `layout`."""
    offsets, size = _offsets(layout)
    fd = os.open(path, os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0), 0o600)
    try:
        if create:
            os.ftruncate(fd, size)
        buffer = mmap.mmap(fd, size)
    finally:
        os.close(fd)
    leaves = [
        np.frombuffer(buffer, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
        for (shape, dtype), offset in zip(layout, offsets)
    ]
    return buffer, leaves


def rows_of(rows: dict[int, int], env_ids: list[int], every: list[int] | None = None) -> slice | list[int]:
    """The rows of `env_ids`: a slice when they are consecutive (the common case), else a list.
    `every`: all env ids in row order, which a whole step's batch is (one list compare, in C)."""
    if every is not None and env_ids == every:
        return slice(0, len(every))
    first = rows[env_ids[0]]
    last = rows[env_ids[-1]]
    if last - first == len(env_ids) - 1 and all(rows[i] == first + k for k, i in enumerate(env_ids)):
        return slice(first, last + 1)
    return [rows[i] for i in env_ids]


class SharedObsWriter:
    """The worker's side of the shared observations: `on_other`/`on_batch` hooks of `serve`."""

    def __init__(self) -> None:
        self.leaves: list[np.ndarray] | None = None
        self.buffer: Any = None
        self.rows: dict[int, int] = {}
        self.every: list[int] = []  # the env ids in row order

    def on_other(self, request: object) -> bool:
        if isinstance(request, AttachObs):
            self.leaves = None
            self.buffer, self.leaves = map_leaves(
                request.path, [(tuple(shape), dtype) for shape, dtype in request.layout], create=False
            )
            self.rows = request.rows
            self.every = sorted(self.rows, key=self.rows.__getitem__)
            # Both sides have it mapped now: the name can go, so nothing is left in /dev/shm even if
            # the caller is killed (the mappings live on until both processes end).
            unlink_quietly(request.path)
            return True
        return False

    def on_batch(self, batch: Batch) -> None:
        if self.leaves is not None and isinstance(batch.obs, (np.ndarray, dict, tuple)) and batch.env_ids:
            rows = rows_of(self.rows, batch.env_ids, self.every)
            for dest, src in zip(self.leaves, tree_leaves(batch.obs)):
                dest[rows] = src
            batch.obs = None
