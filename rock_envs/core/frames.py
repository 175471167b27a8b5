"""Frames, the one framing of every env-worker channel: a 4-byte big-endian length, then the payload.

It is what `multiprocessing.connection.Connection` writes for payloads under 2 GiB, so a worker
serving a `Connection` (`python -m rock_envs.worker --fd N`) and the asyncio channels of the sandbox
layer read each other's frames. The sandbox server relays frames without looking inside; over the
``/workers`` WebSocket a frame travels with its channel id in front, as another ``U32``.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Callable

from rock_envs.core.errors import RockEnvsError

U32 = struct.Struct(">I")
MAX_FRAME = 1 << 30  # 1 GiB: larger payloads are refused on both sides


class FrameTooLargeError(RockEnvsError, ValueError):
    """A frame over `MAX_FRAME`: an observation or action too large to send, or a corrupt stream."""


def _check(size: int, where: str) -> int:
    if size > MAX_FRAME:
        raise FrameTooLargeError(
            f"{where}: a frame of {size} bytes is over the limit of {MAX_FRAME} bytes (1 GiB); "
            "send smaller observations (or a path to the data), or the stream is corrupt."
        )
    return size


def frame(payload: bytes, where: str = "send") -> bytes:
    """`payload` with its length in front."""
    return U32.pack(_check(len(payload), where)) + payload


def read_frame(read_exactly: Callable[[int], bytes], where: str = "recv") -> bytes:
    """One frame's payload, read through a blocking `read_exactly(n)`."""
    (size,) = U32.unpack(read_exactly(U32.size))
    return read_exactly(_check(size, where))


async def read_frame_async(reader: asyncio.StreamReader, where: str = "recv") -> bytes:
    """One frame's payload from an asyncio stream; `IncompleteReadError` at end of stream."""
    (size,) = U32.unpack(await reader.readexactly(U32.size))
    return await reader.readexactly(_check(size, where))
