"""The agent's wire format: one message = a JSON header plus an optional binary body.

On the socket each message is ``[u32 total][u32 header_len][header JSON][body]`` (big-endian),
``total`` counting everything after itself. Binary file chunks travel as bodies, never base64.

Standard library only: this module runs inside the sandbox.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

_LEN = struct.Struct(">II")
MAX_MESSAGE = 64 * 1024 * 1024  # a header plus one chunk; chunks are far smaller
CHUNK = 256 * 1024
# What a reader buffers before it stops reading the socket (asyncio pauses at twice this): a few
# chunks, so a fast sender and a slow receiver leave the excess in the kernel's socket buffer, not
# in memory. Longer messages still arrive whole: `readexactly` resumes reading as it needs to.
READ_LIMIT = 4 * CHUNK


class WireError(ConnectionError):
    """The peer sent something that is not a message of this protocol: the connection is unusable.
    Callers outside the sandbox see it as ``SandboxDiedError``."""


def encode(header: dict[str, Any], body: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return _LEN.pack(len(head) + len(body) + 4, len(head)) + head + body


async def read_message(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes]:
    """Read one message; raises ``asyncio.IncompleteReadError`` at end of stream."""
    prefix = await reader.readexactly(8)
    total, head_len = _LEN.unpack(prefix)
    if total > MAX_MESSAGE or head_len > total - 4:
        raise WireError(f"bad message lengths total={total} header={head_len}")
    data = await reader.readexactly(total - 4)
    try:
        header = json.loads(data[:head_len])
    except ValueError as exc:
        raise WireError(f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise WireError("header is not a JSON object")
    return header, data[head_len:]


def write_message(writer: asyncio.StreamWriter, header: dict[str, Any], body: bytes = b"") -> None:
    writer.write(encode(header, body))


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise EOFError("connection closed")
        buf += part
    return bytes(buf)


def recv_message(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    """Blocking twin of :func:`read_message` for plain sockets."""
    total, head_len = _LEN.unpack(recv_exactly(sock, 8))
    if total > MAX_MESSAGE or head_len > total - 4:
        raise WireError(f"bad message lengths total={total} header={head_len}")
    data = recv_exactly(sock, total - 4)
    return json.loads(data[:head_len]), data[head_len:]


def recv_message_with_fds(sock: socket.socket, max_fds: int = 1) -> tuple[dict[str, Any], bytes, list[int]]:
    """:func:`recv_message`, plus the file descriptors that came with its first bytes (``SCM_RIGHTS``)."""
    data, fds, _, _ = socket.recv_fds(sock, 65536, max_fds)
    if not data:
        raise EOFError("connection closed")
    if len(data) < 8:
        data += recv_exactly(sock, 8 - len(data))
    total, head_len = _LEN.unpack_from(data)
    if total > MAX_MESSAGE or head_len > total - 4:
        raise WireError(f"bad message lengths total={total} header={head_len}")
    if len(data) < 4 + total:
        data += recv_exactly(sock, 4 + total - len(data))
    return json.loads(data[8 : 8 + head_len]), data[8 + head_len : 4 + total], list(fds)
