"""ROCK_WIRE.md §5 T1 (the README quick start) and T2 (session semantics), with rl-rock's own client."""

from __future__ import annotations

import re
import time

import pytest

from tests.rock_wire.spy import calls

pytestmark = pytest.mark.anyio


async def test_quickstart(rock, monkeypatch):
    from rock.actions import CreateBashSessionRequest

    sb = rock.sandbox(image="python:3.11", memory="8g", cpus=2.0)
    with calls(monkeypatch) as seen:
        await sb.start()
    assert seen == ["start_async", "get_status"]  # alive at the first poll: no 3 s sleep
    await sb.create_session(CreateBashSessionRequest(session="bash-1"))
    r = await sb.arun(cmd="echo Hello Rock", session="bash-1")
    assert (r.output, r.exit_code) == ("Hello Rock", 0)
    status = await sb.get_status()
    assert status.is_alive and status.state == "running" and status.memory == "8g"
    assert status.status["docker_run"]["status"] == "success"
    await sb.stop()
    with pytest.raises(Exception, match="Failed to get status"):
        await sb.get_status()


async def test_session_semantics(sandbox):
    from rock.actions import BashAction, CreateBashSessionRequest

    await sandbox.create_session(CreateBashSessionRequest(session="s"))
    await sandbox.arun("cd /tmp && export FOO=bar", session="s")
    assert (await sandbox.arun("pwd; echo $FOO", session="s")).output.splitlines() == ["/tmp", "bar"]
    merged = await sandbox.arun("echo out; echo err >&2; echo out2", session="s")
    assert merged.output.splitlines() == ["out", "err", "out2"]  # one stream, in order
    assert (await sandbox.arun("echo '  padded  '", session="s")).output == "padded"

    with pytest.raises(Exception, match="exit code 2") as raised:
        await sandbox.arun("ls /nope", session="s")
    assert "No such file" in str(raised.value)
    silent = await sandbox.run_in_session(BashAction(command="f(){ return 3; }; f", check="silent", session="s"))
    assert silent.exit_code == 3
    ignored = await sandbox.run_in_session(BashAction(command="false", check="ignore", session="s"))
    assert ignored.exit_code is None

    job = await sandbox.arun("sleep 1 &", session="s")
    assert re.match(r"^\[\d+\]\s+(\d+)$", job.output.splitlines()[-1])
    time.sleep(1.5)
    assert "Done" in (await sandbox.arun("echo next", session="s")).output.splitlines()[0]

    with pytest.raises(Exception, match="/bin/bash: line 1: "):
        await sandbox.arun("echo (", session="s")
    assert (await sandbox.arun("echo x")).output == "x"  # session=None: a session of its own


async def test_timeout_kills_the_command_and_keeps_the_session(sandbox):
    from rock.actions import BashAction, CreateBashSessionRequest

    await sandbox.create_session(CreateBashSessionRequest(session="t"))
    await sandbox.arun("export KEEP=1", session="t")
    with pytest.raises(Exception, match="(?i)timeout"):
        await sandbox.run_in_session(BashAction(command="sleep 30", timeout=1, session="t"))
    after = await sandbox.arun("echo $KEEP; pgrep -x sleep || echo none", session="t")
    assert after.output.splitlines() == ["1", "none"]  # the sleep was killed, the session's state kept


async def test_session_options(sandbox):
    from rock.actions import CreateBashSessionRequest

    await sandbox.write_file_by_path("export FROM_RC=yes\nPS1='noisy> '\n", "/root/.bashrc")
    await sandbox.create_session(
        CreateBashSessionRequest(
            session="roll", startup_source=["/root/.bashrc"], env_enable=True, env={"HOME": "/root"}
        )
    )
    r = await sandbox.arun('echo $FROM_RC $HOME; test -n "$PATH" && echo path', session="roll")
    assert r.output.splitlines() == ["yes /root", "path"]  # no prompt noise from the rc file
    await sandbox.create_session(CreateBashSessionRequest(session="bare", env={"ONLY": "this"}))
    bare = await sandbox.arun("echo $ONLY; env | grep -c ^FROM_RC || true", session="bare")
    assert bare.output.splitlines() == ["this", "0"]
    # a session that exists is kept (ROCK answers Success), closing an unknown one succeeds
    await sandbox.arun("export MARK=1", session="roll")
    await sandbox.create_session(CreateBashSessionRequest(session="roll"))
    assert (await sandbox.arun("echo $MARK", session="roll")).output == "1"
    from rock.actions import CloseBashSessionRequest

    await sandbox.close_session(CloseBashSessionRequest(session="no-such-session"))


async def test_absolute_paths_are_writable_and_private(sandbox):
    r = await sandbox.arun(
        "for d in /tmp /root /data/logs /app /etc/apt; do touch $d/rw-probe && echo ok; done; echo $HOME"
    )
    assert r.output.splitlines() == ["ok"] * 5 + ["/root"]
    import os

    assert not os.path.exists("/etc/apt/rw-probe") and not os.path.exists("/root/rw-probe")  # never the host's
    tools = await sandbox.arun(
        "for t in bash python curl tar ps kill sha256sum; do command -v $t >/dev/null && echo $t; done"
    )
    assert tools.output.split() == ["bash", "python", "curl", "tar", "ps", "kill", "sha256sum"]
