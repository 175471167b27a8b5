"""Files (binary-safe, streamed, tar in and out, no escape) and long jobs. Every mode x runtime."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rock_envs.sandbox import (
    CommandTimeoutError,
    JobNotFoundError,
    PathOutsideSandboxError,
    Sandbox,
    SandboxFileNotFoundError,
)

pytestmark = pytest.mark.anyio
ALL_BYTES = bytes(range(256)) * 7


async def test_write_read_list_delete(sb: Sandbox) -> None:
    await sb.write_file("dir/a.txt", "héllo\n")
    await sb.write_file("dir/b.bin", ALL_BYTES)
    assert await sb.read_file("dir/a.txt") == "héllo\n"
    assert await sb.read_file("dir/b.bin", encoding=None) == ALL_BYTES
    names = {e.name: e for e in await sb.list_files("dir")}
    assert set(names) == {"a.txt", "b.bin"} and names["b.bin"].size == len(ALL_BYTES)
    await sb.delete_file("dir/a.txt")
    assert [e.name for e in await sb.list_files("dir")] == ["b.bin"]
    with pytest.raises(SandboxFileNotFoundError, match="dir/a.txt"):
        await sb.read_file("dir/a.txt")
    assert (await sb.arun("cat dir/b.bin | md5sum")).output.split()[0] == __import__("hashlib").md5(
        ALL_BYTES
    ).hexdigest()


async def test_upload_download_file_and_dir(sb: Sandbox, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    assert (await sb.upload(src, "data/big.bin")).size == src.stat().st_size
    out = tmp_path / "back.bin"
    await sb.download("data/big.bin", out)
    assert out.read_bytes() == src.read_bytes()

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "x.py").write_text("print(1)\n")
    (tree / "top.txt").write_text("top\n")
    await sb.upload(tree, "proj")
    assert (await sb.arun("cat proj/top.txt proj/sub/x.py")).output == "top\nprint(1)\n"
    await sb.arun("echo made > proj/sub/new.txt")
    back = tmp_path / "back"
    await sb.download_dir("proj", back)
    assert (back / "sub" / "new.txt").read_text() == "made\n" and (back / "top.txt").read_text() == "top\n"


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "a/../../x", "link/inside"])
async def test_paths_outside_the_sandbox_are_refused(sb: Sandbox, path: str) -> None:
    await sb.arun("ln -sfn / link")
    with pytest.raises(PathOutsideSandboxError, match="outside the sandbox"):
        await sb.write_file(path, "nope")
    with pytest.raises(PathOutsideSandboxError):
        await sb.read_file(path)
    with pytest.raises(PathOutsideSandboxError):
        await sb.download(path, os.devnull)
    assert (await sb.arun("ls ../escape.txt /x 2>/dev/null | wc -l")).output.strip() == "0"


async def test_job_outlives_the_call_and_reports(sb: Sandbox) -> None:
    job = await sb.run_job("echo start; sleep 0.5; echo done; echo warn >&2; exit 3")
    assert job.status == "running"
    assert (await sb.arun("echo meanwhile")).output == "meanwhile\n"
    with pytest.raises(CommandTimeoutError, match="still running"):
        await sb.wait_job(job.job_id, timeout=0.05)
    ended = await sb.wait_job(job.job_id, timeout=30)
    assert (ended.status, ended.exit_code) == ("exited", 3)
    logs = await sb.job_logs(job.job_id)
    assert logs.data == "start\ndone\n"
    assert (await sb.job_logs(job.job_id, offset=6)).data == "done\n"
    assert (await sb.job_logs(job.job_id, stream="stderr")).data == "warn\n"
    assert [j.job_id for j in await sb.list_jobs()] == [job.job_id]


async def test_kill_job_kills_its_group(sb: Sandbox) -> None:
    job = await sb.run_job("sleep 600 & sleep 601")
    killed = await sb.kill_job(job.job_id)
    assert killed.status == "killed"
    assert (await sb.poll_job(job.job_id)).status == "killed"
    assert (await sb.arun("ps -eo args | grep -c '^sleep 60[01]' || true")).output.strip() == "0"
    with pytest.raises(JobNotFoundError, match="job-nope"):
        await sb.poll_job("job-nope")
