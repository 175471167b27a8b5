"""Bash sessions and commands: state, streams, exit codes, timeouts, limits, streaming. Every mode x runtime."""

from __future__ import annotations

import re

import pytest

from rock_envs.sandbox import OutputChunk, Sandbox, SessionExistsError, SessionNotFoundError

pytestmark = pytest.mark.anyio


async def test_session_keeps_cwd_exports_and_functions(sb: Sandbox) -> None:
    await sb.create_session("s")
    await sb.arun('mkdir -p work && cd work && export GREETING=hi && greet() { echo "$GREETING $1"; }', session="s")
    result = await sb.arun("pwd; greet there", session="s")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].endswith("/work") and lines[1] == "hi there"


async def test_sessions_are_independent(sb: Sandbox) -> None:
    await sb.create_session("a")
    await sb.create_session("b")
    await sb.arun("export ONLY_A=1", session="a")
    assert (await sb.arun("echo ${ONLY_A:-unset}", session="b")).output == "unset\n"
    assert (await sb.arun("echo ${ONLY_A:-unset}", session="a")).output == "1\n"


async def test_stdout_stderr_and_exit_code_apart(sb: Sandbox) -> None:
    await sb.create_session("s")
    result = await sb.arun("echo out; echo err >&2; (exit 3)", session="s")
    assert (result.output, result.stderr, result.exit_code, result.timed_out) == ("out\n", "err\n", 3, False)
    alone = await sb.arun("echo out; echo err >&2; exit 4")
    assert (alone.output, alone.stderr, alone.exit_code) == ("out\n", "err\n", 4)


async def test_output_without_trailing_newline_and_binaryish(sb: Sandbox) -> None:
    await sb.create_session("s")
    assert (await sb.arun("printf 'no newline'", session="s")).output == "no newline"
    assert (await sb.arun("printf '\\x1e__ROCK_fake__0\\n'", session="s")).output == "\x1e__ROCK_fake__0\n"


async def test_syntax_error_does_not_kill_the_session(sb: Sandbox) -> None:
    await sb.create_session("s")
    await sb.arun("export KEEP=yes", session="s")
    bad = await sb.arun("if then fi", session="s")
    assert bad.exit_code != 0 and "syntax error" in bad.stderr
    assert (await sb.arun("echo $KEEP", session="s")).output == "yes\n"


async def test_timeout_kills_the_command_and_keeps_the_session(sb: Sandbox) -> None:
    await sb.create_session("s")
    await sb.arun("export KEEP=yes", session="s")
    result = await sb.arun("echo before; sleep 30", session="s", timeout=0.5)
    assert result.timed_out and result.output == "before\n"
    assert (await sb.arun("echo $KEEP", session="s")).output == "yes\n"


async def test_timeout_of_a_builtin_loop_restarts_the_session(sb: Sandbox) -> None:
    await sb.create_session("s")
    result = await sb.arun("echo spin; while :; do :; done", session="s", timeout=0.5)
    assert result.timed_out and result.output == "spin\n" and "restarted" in result.note
    assert (await sb.arun("echo alive", session="s")).output == "alive\n"


async def test_standalone_timeout_kills_the_whole_process_group(sb: Sandbox) -> None:
    result = await sb.arun("sleep 300 & sleep 301 & echo started; wait", timeout=0.5)
    assert result.timed_out and result.output == "started\n"
    left = await sb.arun("ps -eo args | grep -c '^sleep 30[01]' || true")
    assert left.output.strip() == "0"


async def test_output_limit_truncates(sb: Sandbox) -> None:
    await sb.create_session("s")
    result = await sb.arun("head -c 100000 /dev/zero | tr '\\0' x", session="s", max_output=1000)
    assert result.truncated and len(result.output) == 1000
    alone = await sb.arun("head -c 100000 /dev/zero | tr '\\0' y", max_output=10)
    assert alone.truncated and alone.output == "y" * 10


async def test_unknown_and_duplicate_sessions(sb: Sandbox) -> None:
    with pytest.raises(SessionNotFoundError, match=re.escape("no session 'nope'")):
        await sb.arun("echo", session="nope")
    await sb.create_session("dup")
    with pytest.raises(SessionExistsError, match="already exists"):
        await sb.create_session("dup")
    await sb.close_session("dup")
    await sb.create_session("dup")


async def test_exit_in_a_session_is_reported_and_session_restarts(sb: Sandbox) -> None:
    await sb.create_session("s")
    result = await sb.arun("exit 7", session="s")
    assert "exited" in result.note
    assert (await sb.arun("echo back", session="s")).output == "back\n"


async def test_streamed_output_arrives_in_pieces(sb: Sandbox) -> None:
    events = [e async for e in sb.stream("for i in 1 2 3; do echo $i; sleep 0.05; done; echo e >&2")]
    chunks = [e for e in events if isinstance(e, OutputChunk)]
    assert "".join(c.data for c in chunks if c.stream == "stdout") == "1\n2\n3\n"
    assert len([c for c in chunks if c.stream == "stdout"]) >= 2
    final = events[-1]
    assert not isinstance(final, OutputChunk) and final.exit_code == 0 and final.stderr == "e\n"


async def test_env_and_cwd_per_command(sb: Sandbox) -> None:
    await sb.write_file("sub/marker", "x")
    result = await sb.arun("echo $FOO; ls", env={"FOO": "bar"}, cwd="sub")
    assert result.output == "bar\nmarker\n"


async def test_tty_session_through_the_sdk(sb: Sandbox) -> None:
    await sb.create_session("t", tty=True, inherit_env=False, env={"ONLY": "x"})
    result = await sb.arun("echo $ONLY; echo err >&2", session="t")
    assert (result.output.splitlines(), result.stderr) == (["x", "err"], "")  # one merged stream
