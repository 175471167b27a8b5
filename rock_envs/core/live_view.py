"""An env worker's live frame, for the server's dashboard: while someone watches, the first env's
``render()`` (``render_mode="rgb_array"``) is written as a PNG beside the worker.

The server asks for it by setting ``ROCK_ENVS_FRAME_DIR`` when it opens the worker; then the
dashboard touches ``<dir>/wanted`` while its page is open and reads ``<dir>/frame.png`` back through
the sandbox's file API. The worker looks at the marker at most every ``EVERY`` seconds, between
requests, so nobody watching costs one clock read per request; the frame is the state after the
last request the worker answered (an idle env keeps its last one).
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from typing import Any

import numpy as np

from rock_envs.core.adapters import user_env

FRAME_DIR_ENV = "ROCK_ENVS_FRAME_DIR"
FRAME_FILE = "frame.png"
WANTED_FILE = "wanted"
EVERY = 0.5
"""Seconds between two looks at the marker (and so between two frames)."""
WANTED_FOR = 10.0
"""Seconds a touch of the marker keeps frames coming (the page touches it every second)."""


def png(rgb: np.ndarray) -> bytes:
    """An H x W x 3 uint8 array as a PNG (8-bit truecolor, no filter; zlib's fastest level)."""
    height, width = rgb.shape[:2]
    rows = np.zeros((height, width * 3 + 1), dtype=np.uint8)  # each row starts with filter type 0
    rows[:, 1:] = np.ascontiguousarray(rgb[:, :, :3], dtype=np.uint8).reshape(height, width * 3)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
        + chunk(b"IEND", b"")
    )


class FramePublisher:
    def __init__(self, directory: str):
        self.directory = directory
        self.next_look = 0.0
        os.makedirs(directory, exist_ok=True)

    @classmethod
    def from_env(cls) -> FramePublisher | None:
        directory = os.environ.get(FRAME_DIR_ENV)
        return cls(directory) if directory else None

    def after_request(self, envs: dict[int, Any]) -> None:
        now = time.monotonic()
        if now < self.next_look:
            return
        self.next_look = now + EVERY
        try:
            if os.stat(os.path.join(self.directory, WANTED_FILE)).st_mtime < time.time() - WANTED_FOR:
                return
        except OSError:  # never asked for
            return
        if envs:
            self.publish(envs[min(envs)])

    def publish(self, env: Any) -> None:
        made = user_env(env)
        if getattr(made, "render_mode", None) != "rgb_array":
            return
        try:
            frame = made.render()
        except Exception:  # noqa: BLE001 - a frame for a page never breaks the env's own work
            return
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] not in (3, 4):
            return
        path = os.path.join(self.directory, FRAME_FILE)
        with open(path + ".tmp", "wb") as fh:
            fh.write(png(frame))
        os.replace(path + ".tmp", path)  # the page never reads half a file
