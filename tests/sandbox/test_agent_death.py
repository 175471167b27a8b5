"""Every use of a sandbox passes one gate: a dead agent is found, named and remembered by every call.

A command kills its own parent (`kill -9 $PPID`), the sandbox's agent: a real SIGKILL from inside.
"""

from __future__ import annotations

import pytest

from rock_envs.sandbox import CommandResult, Sandbox, SandboxDiedError

pytestmark = pytest.mark.anyio

KILL_THE_AGENT = "kill -9 $PPID; sleep 30"


async def drain(sb: Sandbox, cmd: str) -> list[object]:
    return [event async for event in sb.stream(cmd, timeout=60)]


async def test_a_stream_whose_agent_dies_raises_and_marks_the_sandbox_dead(sb: Sandbox) -> None:
    with pytest.raises(SandboxDiedError, match="is gone"):
        await drain(sb, KILL_THE_AGENT)
    assert (await sb.status()).status == "dead"
    with pytest.raises(SandboxDiedError, match="is dead; create a new one"):
        await drain(sb, "echo hi")  # refused at the gate, not an empty stream


async def test_a_command_whose_agent_dies_marks_the_sandbox_dead_for_every_later_call(sb: Sandbox) -> None:
    with pytest.raises(SandboxDiedError, match="is gone"):
        await sb.arun(KILL_THE_AGENT, timeout=60)
    assert (await sb.status()).status == "dead"
    calls = [
        lambda: sb.arun("true"),
        lambda: sb.list_files("."),
        lambda: sb.run_job("true"),
        lambda: drain(sb, "true"),
        lambda: sb.read_file("x"),
        lambda: sb.write_file("x", "y"),
    ]
    for call in calls:
        with pytest.raises(SandboxDiedError, match="is dead"):
            await call()


async def test_a_stream_refreshes_the_idle_clock(sb: Sandbox) -> None:
    before = (await sb.status()).last_used_at
    events = await drain(sb, "sleep 0.3; echo done")
    assert isinstance(events[-1], CommandResult) and events[-1].output == "done\n"
    assert (await sb.status()).last_used_at > before + 0.25  # set when the stream ended, not when it began
