"""Standalone commands (``bash -c`` in a fresh process group) and long jobs that outlive a request."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from typing import Any

from .fault import Fault
from .output import OnChunk, Output, kill_group

DRAIN = 1.0  # after a kill, how long to wait for pipes still held open by escaped grandchildren


async def kill_until_empty(pgid: int, within: float = 3.0) -> None:
    """SIGKILL the group again and again until it is empty: a fork bomb refills it between two kills."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        try:
            os.killpg(pgid, 9)
        except (ProcessLookupError, PermissionError):
            return
        await asyncio.sleep(0.01)


async def _pump(reader: asyncio.StreamReader, name: str, out: Output) -> None:
    while chunk := await reader.read(65536):
        out.feed(name, chunk)


async def syntax_error(cmd: str) -> str:
    """What ``/bin/bash -n`` says of ``cmd`` read as a script (``/bin/bash: line 1: ...``); "" if it parses."""
    proc = await asyncio.create_subprocess_exec(
        "/bin/bash",
        "-n",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    _, err = await proc.communicate(cmd.encode("utf-8", errors="surrogateescape") + b"\n")
    return err.decode("utf-8", errors="replace") if proc.returncode else ""


async def run_command(
    cmd: str,
    cwd: str,
    env: dict[str, str],
    timeout: float,
    limit: int,
    on_chunk: OnChunk | None = None,
    argv: list[str] | None = None,
) -> dict[str, Any]:
    """``bash -c cmd`` (or exactly ``argv``, no shell) in a fresh process group, to its end or ``timeout``."""
    try:
        proc = await _start(argv or ["bash", "-c", cmd], cwd, env)
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:  # only with an argv: no such program
        return {"output": "", "stderr": f"{exc}\n", "exit_code": -1, "timed_out": False, "note": ""}
    return await _collect(proc, timeout, limit, on_chunk)


async def _start(argv: list[str], cwd: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )


async def _collect(
    proc: asyncio.subprocess.Process, timeout: float, limit: int, on_chunk: OnChunk | None
) -> dict[str, Any]:
    assert proc.stdout and proc.stderr
    out = Output(limit, on_chunk)
    pumps = asyncio.gather(_pump(proc.stdout, "stdout", out), _pump(proc.stderr, "stderr", out))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    timed_out = False
    try:
        # done when bash exited *and* its output closed: background children holding the pipes count
        await asyncio.wait_for(asyncio.shield(proc.wait()), timeout)
        await asyncio.wait_for(asyncio.shield(pumps), max(0.0, deadline - loop.time()))
    except asyncio.TimeoutError:
        timed_out = True
    finally:
        # a standalone command's processes never outlive it (use a job for that); this also ends
        # a fork bomb whose first shell already returned
        await kill_until_empty(proc.pid)
    await proc.wait()
    try:
        await asyncio.wait_for(asyncio.shield(pumps), DRAIN)
    except asyncio.TimeoutError:
        pumps.cancel()
    return {
        "output": out.text("stdout"),
        "stderr": out.text("stderr"),
        "exit_code": proc.returncode,
        "timed_out": timed_out,
        "truncated": out.truncated,
        "note": "",
    }


class Job:
    def __init__(self, job_id: str, cmd: str, proc: asyncio.subprocess.Process, logdir: str):
        self.id, self.cmd, self.proc = job_id, cmd, proc
        self.paths = {s: os.path.join(logdir, f"{job_id}.{s}") for s in ("stdout", "stderr")}
        self.started = time.time()
        self.ended: float | None = None
        self.killed = False
        self.waiter = asyncio.ensure_future(self._wait())

    async def _wait(self) -> None:
        await self.proc.wait()
        self.ended = time.time()

    def info(self) -> dict[str, Any]:
        code = self.proc.returncode
        status = "running" if code is None else ("killed" if self.killed else "exited")
        return {
            "job_id": self.id,
            "command": self.cmd,
            "pid": self.proc.pid,
            "status": status,
            "exit_code": code,
            "started_at": self.started,
            "ended_at": self.ended,
        }


class Jobs:
    def __init__(self, cwd: str, env: dict[str, str], logdir: str):
        self.cwd, self.env, self.logdir = cwd, env, logdir
        self.by_id: dict[str, Job] = {}

    async def start(self, cmd: str, env: dict[str, str] | None = None, cwd: str | None = None) -> dict[str, Any]:
        job_id = "job-" + secrets.token_hex(6)
        os.makedirs(self.logdir, exist_ok=True)
        paths = [os.path.join(self.logdir, f"{job_id}.{s}") for s in ("stdout", "stderr")]
        with open(paths[0], "wb") as fo, open(paths[1], "wb") as fe:
            proc = await asyncio.create_subprocess_exec(
                "bash",
                "-c",
                cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=fo,
                stderr=fe,
                cwd=cwd or self.cwd,
                env={**self.env, **(env or {})},
                start_new_session=True,
            )
        job = Job(job_id, cmd, proc, self.logdir)
        self.by_id[job_id] = job
        return job.info()

    def get(self, job_id: str, call: str) -> Job:
        try:
            return self.by_id[job_id]
        except KeyError:
            raise Fault(
                "JobNotFoundError",
                f"`{call}`: no job {job_id!r} in this sandbox; use the `job_id` returned by `run_job`.",
            ) from None

    async def wait(self, job_id: str, timeout: float) -> dict[str, Any]:
        job = self.get(job_id, "wait_job")
        try:
            await asyncio.wait_for(asyncio.shield(job.waiter), timeout)
        except asyncio.TimeoutError:
            raise Fault(
                "CommandTimeoutError",
                f"`wait_job`: job {job_id!r} still running after {timeout} s; wait longer, poll it, or kill it.",
            ) from None
        return job.info()

    def logs(self, job_id: str, stream: str, offset: int, limit: int) -> tuple[dict[str, Any], bytes]:
        job = self.get(job_id, "job_logs")
        if stream not in job.paths:
            raise Fault("InvalidRequestError", f"`job_logs`: stream must be 'stdout' or 'stderr', got {stream!r}.")
        with open(job.paths[stream], "rb") as fh:
            fh.seek(max(0, offset))
            data = fh.read(limit)
        return {**job.info(), "offset": offset, "next_offset": offset + len(data)}, data

    async def kill(self, job_id: str) -> dict[str, Any]:
        job = self.get(job_id, "kill_job")
        if job.proc.returncode is None:
            job.killed = True
            await kill_until_empty(job.proc.pid)
            await job.waiter
        return job.info()

    async def kill_all(self) -> None:
        for job in self.by_id.values():
            if job.proc.returncode is None:
                kill_group(job.proc.pid)
