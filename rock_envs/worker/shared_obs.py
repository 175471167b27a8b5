"""The worker's side of shared observations: the subprocess backend maps one array per worker in
/dev/shm, and the worker writes its envs' rows there instead of sending them over the socket."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rock_envs.worker.protocol import Batch


@dataclass
class AttachObs:
    """Transport-private request: write array observations into this shared file from now on."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    rows: dict[int, int]


class SharedObsWriter:
    """The worker's side of the shared observations: `on_other`/`on_batch` hooks of `serve`."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None
        self.rows: dict[int, int] = {}

    def on_other(self, request: object) -> bool:
        if isinstance(request, AttachObs):
            self.array = np.memmap(request.path, dtype=request.dtype, mode="r+", shape=request.shape)
            self.rows = request.rows
            return True
        return False

    def on_batch(self, batch: Batch) -> None:
        if self.array is not None and isinstance(batch.obs, np.ndarray) and batch.env_ids:
            self.array[[self.rows[i] for i in batch.env_ids]] = batch.obs
            batch.obs = None
