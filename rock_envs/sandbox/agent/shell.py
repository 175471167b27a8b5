"""Bash sessions that keep their state: one long-lived ``bash`` per session, commands framed by sentinels.

A command is sent as ``__rock_cmd=$'...'; eval "$__rock_cmd" </dev/null`` followed by ``printf`` of a
random marker and the exit code on stdout and on stderr. ``eval`` runs in the shell itself, so ``cd``,
exported variables and functions persist; a syntax error only fails that command. The shell runs
with job control (``set -m``), so each command gets its own process group: on timeout those groups
are killed and the session survives. If the shell itself is stuck (a builtin loop), the whole
session is killed and restarted, and the result says its state was lost. No pexpect, no delays:
output is read as it arrives and the marker ends the command.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import shlex
import time
from typing import Any, Literal

from .fault import Fault
from .output import OnChunk, Output, child_groups, descendants, kill_group
from .tty import RESET_PROMPT, as_user, foreground_group, spawn_tty_bash

GRACE = 2.0  # seconds to wait for the shell to come back after its command's groups were killed


def ansi_c_quote(text: str) -> str:
    out = []
    for byte in text.encode("utf-8", errors="surrogateescape"):
        ch = chr(byte)
        if ch in "\\'":
            out.append("\\" + ch)
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append(f"\\x{byte:02x}")
    return "$'" + "".join(out) + "'"


class _Stream:
    """Reads one pipe of the shell and hands bytes to the running command until its marker shows."""

    def __init__(self, name: str, reader: asyncio.StreamReader):
        self.name = name
        self.reader = reader
        self.pending = bytearray()
        self.marker = b""
        self.sink: Output | None = None
        self.done: asyncio.Future[bytes] | None = None
        self.eof = False

    def arm(self, marker: bytes, sink: Output) -> asyncio.Future[bytes]:
        self.marker, self.sink = marker, sink
        self.done = asyncio.get_running_loop().create_future()
        self._scan()
        return self.done

    def flush(self) -> None:
        """The marker will never come (the shell is being killed): hand over what was held back."""
        if self.sink is not None and self.done is not None and not self.done.done():
            self.sink.feed(self.name, bytes(self.pending))
            self.pending.clear()

    async def pump(self) -> None:
        while True:
            try:
                chunk = await self.reader.read(65536)
            except OSError:  # a pty's master reads EIO once the shell side closed
                chunk = b""
            if not chunk:
                self.eof = True
                if self.done is not None and not self.done.done():
                    self.done.set_exception(EOFError(f"shell {self.name} closed"))
                return
            self.pending += chunk
            self._scan()

    def _scan(self) -> None:
        if self.done is None or self.done.done() or self.sink is None:
            if len(self.pending) > 1 << 20:  # output of a background job between commands: drop
                del self.pending[: -len(self.marker) or None]
            return
        idx = self.pending.find(self.marker)
        if idx >= 0:
            self.sink.feed(self.name, bytes(self.pending[:idx]))
            del self.pending[:idx]  # the marker now starts the buffer
            rest = self.pending[len(self.marker) :]
            nl = rest.find(b"\n")
            if nl < 0:  # the exit code's line is not complete yet
                return
            self.pending = rest[nl + 1 :]
            self.done.set_result(bytes(rest[:nl]))
            return
        hold = len(self.marker) - 1
        if len(self.pending) > hold:
            cut = len(self.pending) - hold
            assert self.sink is not None
            self.sink.feed(self.name, bytes(self.pending[:cut]))
            del self.pending[:cut]


async def _settle(futs: list[asyncio.Future[bytes]], timeout: float) -> list[bytes] | None | Literal[False]:
    """Results once all are done; None if time ran out; False if the shell's pipes closed."""
    if timeout > 0:
        await asyncio.wait(futs, timeout=timeout)
    if not all(f.done() for f in futs):
        return None
    if any(f.cancelled() or f.exception() is not None for f in futs):
        return False
    return [f.result() for f in futs]


def _user(name: str | None, env: dict[str, str]) -> tuple[int, int] | None:
    """(uid, gid) of the sandbox's user ``name`` (``None`` or root: no switch); sets its HOME and USER."""
    if name is None or name == "root" and os.geteuid() == 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise Fault(
            "InvalidRequestError",
            f"`create_session`: no user {name!r} in this sandbox (its /etc/passwd); create it first or omit the user.",
        ) from None
    env.update(HOME=entry.pw_dir, USER=name, LOGNAME=name)
    return entry.pw_uid, entry.pw_gid


class BashSession:
    """One long-lived bash. ``tty``: an interactive bash on a pty (see :mod:`.tty`), one merged stream;
    else bash on pipes, stdout and stderr apart. ``source``: files sourced once at start (their
    errors ignored). ``idle_timeout``: seconds unused, with no process of its own left, before the
    session may be reaped."""

    def __init__(
        self,
        name: str,
        cwd: str,
        env: dict[str, str],
        tty: bool = False,
        source: list[str] | None = None,
        idle_timeout: float | None = None,
        user: str | None = None,
    ):
        self.name = name
        self.cwd = cwd
        self.env = env
        self.tty = tty
        self.source = list(source or [])
        self.idle_timeout = idle_timeout
        self.user = _user(user, self.env)
        self.last_used = time.monotonic()
        self.lock = asyncio.Lock()
        self.proc: asyncio.subprocess.Process | None = None
        self.stdin: Any = None
        self.master: int | None = None
        self.streams: dict[str, _Stream] = {}
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        try:
            await self._spawn()
        except PermissionError as exc:
            raise Fault(
                "InvalidRequestError",
                f"`create_session`: cannot start a shell as user {self.user} here ({exc}); omit the user.",
            ) from None
        self.tasks = [asyncio.create_task(s.pump()) for s in self.streams.values()]
        if not self.tty:
            self.stdin.write(b"set -m\n")
        if self.source:
            script = "; ".join(f"source {shlex.quote(path)}" for path in self.source)
            await self._run(script + (f"; {RESET_PROMPT}" if self.tty else ""), 30.0, 1 << 20, None, "")

    async def _spawn(self) -> None:
        if self.tty:
            self.proc, reader, self.stdin, self.master = await spawn_tty_bash(self.cwd, self.env, user=self.user)
            self.streams = {"stdout": _Stream("stdout", reader)}
            return
        self.proc = await asyncio.create_subprocess_exec(
            "bash",
            "--noprofile",
            "--norc",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.cwd,
            env=self.env,
            start_new_session=True,
            **as_user(self.user),
        )
        assert self.proc.stdout and self.proc.stderr and self.proc.stdin
        self.stdin = self.proc.stdin
        self.streams = {"stdout": _Stream("stdout", self.proc.stdout), "stderr": _Stream("stderr", self.proc.stderr)}

    def idle(self, now: float) -> bool:
        """Reapable: unused for ``idle_timeout`` seconds, not running a command, nothing of its own alive."""
        if self.idle_timeout is None or self.lock.locked() or now - self.last_used < self.idle_timeout:
            return False
        return self.proc is None or not descendants(self.proc.pid)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and not any(s.eof for s in self.streams.values())

    async def run(self, cmd: str, timeout: float, limit: int, on_chunk: OnChunk | None = None) -> dict[str, Any]:
        async with self.lock:
            note = ""
            if not self.alive:
                await self.close()
                await self.start()
                note = f"session {self.name!r} had died and was restarted; its state was lost"
            try:
                return await self._run(cmd, timeout, limit, on_chunk, note)
            finally:
                self.last_used = time.monotonic()

    def _kill_running(self) -> None:
        """Kill what the running command started: on a tty its foreground job, else every group of the shell's."""
        assert self.proc is not None
        if self.master is not None:
            group = foreground_group(self.master)
            if group is not None and group != self.proc.pid:
                kill_group(group)
            return
        for pgid in child_groups(self.proc.pid):
            kill_group(pgid)

    async def _run(self, cmd: str, timeout: float, limit: int, on_chunk: OnChunk | None, note: str) -> dict[str, Any]:
        assert self.proc is not None and self.stdin is not None
        nonce = secrets.token_hex(8)
        marker = f"\x1e__ROCK_{nonce}__".encode()
        out = Output(limit, on_chunk)
        waits = {name: s.arm(marker, out) for name, s in self.streams.items()}
        script = (
            f"__rock_cmd={ansi_c_quote(cmd)}\n"
            'eval "$__rock_cmd" </dev/null\n'
            f"__rock_ec=$?; printf '\\036__ROCK_{nonce}__%d\\n' $__rock_ec"
            + ("\n" if self.tty else f"; printf '\\036__ROCK_{nonce}__\\n' >&2\n")
        )
        self.stdin.write(script.encode())
        futs = list(waits.values())
        timed_out = await _settle(futs, timeout) is None
        if timed_out:  # kill what the command started, again and again, until the shell is back
            deadline = asyncio.get_running_loop().time() + GRACE
            while not all(f.done() for f in futs) and asyncio.get_running_loop().time() < deadline:
                self._kill_running()
                await _settle(futs, 0.02)
        codes = await _settle(futs, 0)
        if codes is None or codes is False:
            for stream in self.streams.values():
                stream.flush()
            for fut in futs:
                fut.cancel()
            await self.close()
            if timed_out:
                note = (
                    f"session {self.name!r} did not come back after the timeout and was restarted; its state was lost"
                )
            else:
                note = f"session {self.name!r} exited (did the command run `exit`?); it restarts on the next call"
            codes = [b"-9" if timed_out else b"-1"]
        try:
            exit_code = int(codes[0])
        except ValueError:
            exit_code = -1
        if timed_out and exit_code == 0:
            exit_code = -9
        return {
            "output": out.text("stdout"),
            "stderr": out.text("stderr"),
            "exit_code": exit_code,
            "timed_out": timed_out,
            "truncated": out.truncated,
            "note": note,
        }

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            for pgid in child_groups(self.proc.pid):
                kill_group(pgid)
            kill_group(self.proc.pid)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                pass
        for task in self.tasks:
            task.cancel()
        self.tasks = []
        self.proc = None
        if self.master is not None:
            self.stdin.close()
            os.close(self.master)
            self.master = None


REAP_EVERY = 5.0  # seconds between two looks for idle sessions


class Sessions:
    def __init__(self, cwd: str, env: dict[str, str]):
        self.cwd, self.env = cwd, env
        self.by_name: dict[str, BashSession] = {}
        self.reaper: asyncio.Task[None] | None = None

    async def create(
        self,
        name: str,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        *,
        inherit_env: bool = True,
        **options: Any,
    ) -> None:
        """A new session; ``options`` are :class:`BashSession`'s (tty, source, idle_timeout, user)."""
        if name in self.by_name:
            raise Fault(
                "SessionExistsError",
                f"`create_session`: a session named {name!r} already exists; pick another name or close it first.",
            )
        keep: tuple[str, ...] = ("PATH", "HOME")
        base = self.env if inherit_env else {k: self.env[k] for k in keep if k in self.env}
        session = BashSession(name, cwd or self.cwd, {**base, **(env or {})}, **options)
        if session.idle_timeout is not None and self.reaper is None:
            self.reaper = asyncio.create_task(self._reap_idle())
        self.by_name[name] = session
        try:
            await session.start()
        except BaseException:
            self.by_name.pop(name, None)
            raise

    def get(self, name: str, call: str) -> BashSession:
        try:
            return self.by_name[name]
        except KeyError:
            known = ", ".join(sorted(self.by_name)) or "none"
            raise Fault(
                "SessionNotFoundError",
                f"`{call}`: no session {name!r} in this sandbox (sessions: {known}); "
                "create it with `create_session` first.",
            ) from None

    async def close(self, name: str) -> None:
        session = self.get(name, "close_session")
        del self.by_name[name]
        await session.close()

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(REAP_EVERY)
            now = time.monotonic()
            for name, session in list(self.by_name.items()):
                if self.by_name.get(name) is session and session.idle(now):
                    del self.by_name[name]
                    await session.close()

    async def close_all(self) -> None:
        if self.reaper is not None:
            self.reaper.cancel()
            self.reaper = None
        for name in list(self.by_name):
            await self.by_name.pop(name).close()
