"""Shared observations: the subprocess backend maps one array per worker in /dev/shm, and the worker
writes its envs' rows there instead of sending them over the socket.

The caller creates and maps the file, the worker maps it and unlinks its name. Both sides map the file with `mmap` and view it as a plain ndarray (not `np.memmap`, whose subclass
hooks cost microseconds on every indexing). A batch whose env ids are consecutive rows is one slice
copy; any other batch is one fancy-index copy.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from rock_envs.worker.protocol import Batch, Message


@dataclass
class AttachObs(Message):
    """Transport-private request: write array observations into this shared file from now on."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    rows: dict[int, int]


def map_array(path: str, shape: tuple[int, ...], dtype: str, create: bool) -> tuple[mmap.mmap, np.ndarray]:
    """Map `path` (created and sized when `create`) as an ndarray of `shape` and `dtype`."""
    size = max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize)
    fd = os.open(path, os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0), 0o600)
    try:
        if create:
            os.ftruncate(fd, size)
        buffer = mmap.mmap(fd, size)
    finally:
        os.close(fd)
    count = int(np.prod(shape))
    return buffer, np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)


def rows_of(rows: dict[int, int], env_ids: list[int]) -> slice | list[int]:
    """The rows of `env_ids`: a slice when they are consecutive (the common case), else a list."""
    first = rows[env_ids[0]]
    last = rows[env_ids[-1]]
    if last - first == len(env_ids) - 1 and all(rows[i] == first + k for k, i in enumerate(env_ids)):
        return slice(first, last + 1)
    return [rows[i] for i in env_ids]


class SharedObsWriter:
    """The worker's side of the shared observations: `on_other`/`on_batch` hooks of `serve`."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None
        self.buffer: Any = None
        self.rows: dict[int, int] = {}

    def on_other(self, request: object) -> bool:
        if isinstance(request, AttachObs):
            self.array = None
            self.buffer, self.array = map_array(request.path, tuple(request.shape), request.dtype, create=False)
            self.rows = request.rows
            # Both sides have it mapped now: the name can go, so nothing is left in /dev/shm even if
            # the caller is killed (the mappings live on until both processes end).
            try:
                os.unlink(request.path)
            except FileNotFoundError:
                pass
            return True
        return False

    def on_batch(self, batch: Batch) -> None:
        if self.array is not None and isinstance(batch.obs, np.ndarray) and batch.env_ids:
            self.array[rows_of(self.rows, batch.env_ids)] = batch.obs
            batch.obs = None
