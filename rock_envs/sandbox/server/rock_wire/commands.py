"""ROCK's sessions and commands: ``create_session``, ``run_in_session``, ``close_session``, ``execute``.

A ROCK session is a rock-envs tty session (an interactive bash on a pty), so clients see what ROCK's
pexpect sessions give: merged output, ``[N] PID`` job lines, the output stripped. ``check`` is
ROCK's: ``raise`` answers ``Failed`` on a non-zero exit (which is how the client's nohup loop learns
that ``kill -0`` failed), ``silent`` returns the exit code, ``ignore`` returns none. A command that
does not parse (``bash -n`` inside the sandbox) is refused with ROCK's message, which ROLL looks for.
A timeout kills the command's process group; the session stays usable.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request

from ... import models as m
from ...errors import SessionExistsError, SessionNotFoundError
from .auth import authorize
from .envelope import COMMAND_ERROR, WireError, enveloped, json_body, parse
from .lifecycle import registry, router
from .models import CloseSession, CreateSession, Execute, SessionAction

CLIENT_SESSION = re.compile(r"^bash-\d+$")  # what rl-rock names the sessions it makes and never closes
MAX_OUTPUT = 64 << 20


async def _sandbox(request: Request, op: str, model: type[Any]) -> tuple[Any, str]:
    authorize(request, op)
    req = parse(model, await json_body(request, op), op)
    return req, await registry(request).sid(req.sandbox_id, op)


@router.post("/create_session")
@enveloped("create_session")
async def create_session(request: Request) -> Any:
    req, sid = await _sandbox(request, "create_session", CreateSession)
    config = registry(request).config
    user = req.remote_user if req.remote_user not in (None, "", "root") else None
    try:
        session = m.SessionRequest(
            session=req.session,
            env=req.env,
            inherit_env=req.env_enable,
            tty=True,
            source=req.startup_source,
            idle_timeout=config.idle_session_timeout if CLIENT_SESSION.match(req.session) else None,
            user=user,
        )
    except ValueError as exc:
        raise WireError(f"`create_session`: session {req.session!r}: {exc}") from None
    try:
        await request.app.state.api.create_session(sid, session)
    except SessionExistsError:
        pass  # as ROCK: the session that exists is kept, and the call succeeds
    return {"output": "", "session_type": "bash"}


def _syntax_message(cmd: str, result: m.CommandResult) -> str:
    return (
        f"Error (exit code {result.exit_code}) while checking bash command \n{cmd!r}\n"
        f"---- Stderr ----\n{result.stderr}\n---- Stdout ----\n"
    )


@router.post("/run_in_session")
@enveloped("run_in_session")
async def run_in_session(request: Request) -> Any:
    req, sid = await _sandbox(request, "run_in_session", SessionAction)
    timeout = req.timeout or registry(request).config.session_timeout
    try:
        run = m.RunRequest(
            cmd=req.command, session=req.session, timeout=timeout, syntax_check=True, max_output=MAX_OUTPUT
        )
    except ValueError as exc:
        raise WireError(f"`run_in_session`: {exc}") from None
    try:
        result = await request.app.state.api.run(sid, run)
    except SessionNotFoundError as exc:
        raise WireError(f"session {req.session!r} does not exist: {exc.message}") from None
    if result.syntax_error:
        raise WireError(_syntax_message(req.command, result), COMMAND_ERROR, result.exit_code)
    output = result.output.strip()
    if result.timed_out:
        raise WireError(
            f"timeout after {timeout} seconds while running command {req.command!r} (its processes were "
            f"killed; the session is usable); output so far:\n{output}",
            COMMAND_ERROR,
            result.exit_code,
        )
    if req.check == "raise" and result.exit_code != 0:
        raise WireError(
            f"Command {req.command!r} failed with exit code {result.exit_code}. Here is the output:\n{output!r}",
            COMMAND_ERROR,
            result.exit_code,
        )
    exit_code = None if req.check == "ignore" else result.exit_code
    return {"session_type": "bash", "output": output, "exit_code": exit_code, "failure_reason": "", "expect_string": ""}


@router.post("/close_session")
@enveloped("close_session")
async def close_session(request: Request) -> Any:
    req, sid = await _sandbox(request, "close_session", CloseSession)
    try:
        await request.app.state.api.close_session(sid, m.SessionRef(session=req.session))
    except (SessionNotFoundError, ValueError):
        pass  # as ROCK: closing a session that is not there succeeds
    return {"session_type": "bash"}


@router.post("/execute")
@enveloped("execute")
async def execute(request: Request) -> Any:
    """ROCK's ``subprocess.run(command, shell=False)``: a list is an argv, a string one program name
    (unless ``shell``); ``env`` replaces the environment; a missing program gives exit code -1."""
    req, sid = await _sandbox(request, "execute", Execute)
    if isinstance(req.command, list):
        argv = [str(a) for a in req.command]
    else:
        argv = ["/bin/bash", "-c", req.command] if req.shell else [req.command]
    if not argv or not argv[0]:
        raise WireError("`execute`: expected a command (a program name or an argv list), got an empty one.")
    run = m.RunRequest(
        cmd=" ".join(argv)[:1000],
        argv=argv,
        env=req.env,
        inherit_env=req.env is None,
        cwd=req.cwd,
        timeout=min(req.timeout or 1200, 24 * 3600),
        max_output=MAX_OUTPUT,
    )
    result = await request.app.state.api.run(sid, run)
    if result.timed_out:
        raise WireError(f"`execute`: timeout after {run.timeout} seconds running {argv!r}.", COMMAND_ERROR)
    return {"stdout": result.output, "stderr": result.stderr, "exit_code": result.exit_code}
