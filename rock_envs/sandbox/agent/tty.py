"""An interactive bash on a pseudo-terminal, as ROCK's sessions are: one merged output stream.

On a terminal, bash with job control prints what an interactive shell prints: ``[1] 4242`` when a
command goes to the background and ``[1]+  Done  sleep 1`` before the next command once it ended;
stdout and stderr arrive merged, in the order written, with ``\\r\\n`` line ends. The terminal has
echo off (nothing typed comes back) and no line buffering (a command longer than the kernel's 4 KiB
line limit still arrives whole); bash runs without readline. Standard library only.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import termios
from typing import Any

NO_PROMPT = {"PS1": "", "PS2": "", "PS0": ""}
RESET_PROMPT = "unset PROMPT_COMMAND; PS1=''; PS2=''; PS0=''"
"""Run after the startup files, which may set a prompt (an interactive shell prints it before each line)."""


def _take_terminal() -> None:  # in the child, after setsid: the pty becomes its controlling terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class _Writer:
    """What the session writes commands through: a write transport on the pty's master."""

    def __init__(self, transport: asyncio.WriteTransport):
        self.transport = transport

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def close(self) -> None:
        self.transport.close()


def as_user(user: tuple[int, int] | None) -> dict[str, Any]:
    """``create_subprocess_exec`` keywords that start the child as ``(uid, gid)`` (none: as the agent)."""
    return {"user": user[0], "group": user[1], "extra_groups": []} if user else {}


async def spawn_tty_bash(
    cwd: str, env: dict[str, str], argv: list[str] | None = None, user: tuple[int, int] | None = None
) -> tuple[asyncio.subprocess.Process, asyncio.StreamReader, _Writer, int]:
    """Start ``bash -i`` on a new pty; returns the process, a reader and a writer of the master side, and
    the master's fd (for the terminal's foreground process group)."""
    master, slave = os.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~(termios.ECHO | termios.ICANON)
        attrs[6][termios.VMIN], attrs[6][termios.VTIME] = 1, 0
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        proc = await asyncio.create_subprocess_exec(
            *(argv or ["bash", "--noediting", "--noprofile", "--norc", "-i"]),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env={**env, **NO_PROMPT},
            start_new_session=True,
            preexec_fn=_take_terminal,
            **as_user(user),
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(os.dup(master), "rb", 0))
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(os.dup(master), "wb", 0))
    return proc, reader, _Writer(transport), master


def foreground_group(master: int) -> int | None:
    """The process group the terminal runs in the foreground now (the running command's, or bash's own)."""
    try:
        return os.tcgetpgrp(master)
    except OSError:
        return None
