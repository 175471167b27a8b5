"""ROCK_WIRE.md §5 T3: `arun(mode="nohup")` as rl-rock drives it (start, `kill -0` polling, read back)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def test_nohup_quick_command(sandbox):
    from rock.actions import CreateBashSessionRequest

    await sandbox.create_session(CreateBashSessionRequest(session="s"))
    r = await sandbox.arun("echo nohup-out", session="s", mode="nohup")
    assert (r.output, r.exit_code) == ("nohup-out", 0)  # how long it took is benchmarks.rock_wire's business


@pytest.mark.slow
async def test_nohup_waits_for_the_job_and_reaps_it(sandbox):
    r = await sandbox.arun("bash -c 'sleep 2; echo late; exit 7'", mode="nohup", wait_interval=1, wait_timeout=120)
    # `kill -0` turned false once the job ended (reaped: a zombie would keep it true until the client's
    # wait_timeout, which answers exit code 1 and "did not complete"); ROCK reports 0 whatever the job's status
    assert (r.output, r.exit_code) == ("late", 0)


@pytest.mark.slow
async def test_nohup_output_file_and_timeout(sandbox):
    from rock.actions import ReadFileRequest

    r = await sandbox.arun("echo to-file", mode="nohup", ignore_output=True, output_file="/tmp/o/out.txt")
    assert "Output file: /tmp/o/out.txt" in r.output and "File size: " in r.output
    assert (await sandbox.read_file(ReadFileRequest(path="/tmp/o/out.txt"))).content == "to-file\n"
    late = await sandbox.arun("sleep 600", mode="nohup", wait_timeout=6)
    assert late.exit_code == 1 and "did not complete" in late.failure_reason
