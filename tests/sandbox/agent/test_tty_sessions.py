"""The session options ROCK's wire uses, at the sandbox layer: tty sessions, idle reaping, argv runs,
the syntax check, and a writable root view that never touches the host."""

from __future__ import annotations

import asyncio
import os
from typing import AsyncIterator

import pytest

from rock_envs.sandbox import SessionNotFoundError
from rock_envs.sandbox import models as m
from rock_envs.sandbox.local import LocalSandboxAPI

pytestmark = pytest.mark.anyio


@pytest.fixture
async def api(embedded_dir: str) -> AsyncIterator[tuple[LocalSandboxAPI, str]]:
    local = LocalSandboxAPI(runtime_dir=embedded_dir)
    info = await local.create(m.SandboxSpec(writable_root=os.geteuid() == 0))
    yield local, info.id
    await local.aclose()


async def test_tty_session_merges_streams_and_prints_job_lines(api: tuple[LocalSandboxAPI, str]) -> None:
    local, sid = api
    await local.create_session(sid, m.SessionRequest(session="t", tty=True))
    merged = await local.run(sid, m.RunRequest(cmd="echo out; echo err >&2", session="t"))
    assert (merged.output.splitlines(), merged.stderr) == (["out", "err"], "")
    job = await local.run(sid, m.RunRequest(cmd="sleep 0.2 &", session="t"))
    assert job.output.strip().startswith("[1] ")
    await asyncio.sleep(0.5)
    assert "Done" in (await local.run(sid, m.RunRequest(cmd="true", session="t"))).output


async def test_idle_sessions_are_reaped_unless_something_runs(api: tuple[LocalSandboxAPI, str]) -> None:
    local, sid = api
    for name in ("idle", "busy"):
        await local.create_session(sid, m.SessionRequest(session=name, tty=True, idle_timeout=0.5))
    await local.run(sid, m.RunRequest(cmd="sleep 60 &", session="busy"))
    await asyncio.sleep(7)  # past the idle timeout and one look of the reaper (every 5 s)
    with pytest.raises(SessionNotFoundError):
        await local.run(sid, m.RunRequest(cmd="true", session="idle"))
    assert (await local.run(sid, m.RunRequest(cmd="echo kept", session="busy"))).output.strip() == "kept"


async def test_argv_env_and_syntax_check(api: tuple[LocalSandboxAPI, str]) -> None:
    local, sid = api
    exact = await local.run(sid, m.RunRequest(cmd="x", argv=["printf", "%s|", "a b", "c"], inherit_env=False))
    assert exact.output == "a b|c|"
    missing = await local.run(sid, m.RunRequest(cmd="x", argv=["no-such-program-here"]))
    assert missing.exit_code == -1 and "no-such-program-here" in missing.stderr
    bad = await local.run(sid, m.RunRequest(cmd="echo (", syntax_check=True))
    assert bad.syntax_error and "/bin/bash: line 1: " in bad.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the process runtime's root view needs root")
async def test_writable_root_is_private(api: tuple[LocalSandboxAPI, str]) -> None:
    local, sid = api
    probe = "/etc/rock-envs-root-view-probe"
    wrote = await local.run(sid, m.RunRequest(cmd=f"echo inside > {probe} && cat {probe} && echo $HOME && pwd"))
    assert wrote.output.split() == ["inside", "/root", "/"]
    assert not os.path.exists(probe)  # the host's /etc never changed
    siblings = await local.run(sid, m.RunRequest(cmd=f"ls {local.manager.state.sandboxes}"))
    assert siblings.output.split() == [sid]  # other sandboxes' directories stay hidden
