"""ROCK_WIRE.md §5 T4: `execute`, `write_file`/`read_file`, `upload_by_path`, `fs.upload_dir`,
`fs.download_file` (no OSS here) and `process.execute_script`, with rl-rock's own client."""

from __future__ import annotations

import hashlib
import os

import pytest

pytestmark = pytest.mark.anyio


async def test_execute(sandbox):
    from rock.actions import Command

    r = await sandbox.execute(Command(command=["/bin/bash", "-c", "echo out; echo err >&2; exit 5"]))
    assert (r.stdout, r.stderr, r.exit_code) == ("out\n", "err\n", 5)
    assert (await sandbox.execute(Command(command="pwd", cwd="/tmp"))).stdout == "/tmp\n"
    assert (await sandbox.execute(Command(command="echo hi"))).exit_code == -1  # one program name, as ROCK
    clean = await sandbox.execute(Command(command=["/usr/bin/env"], env={"ONLY": "1"}))
    assert clean.stdout.split() == ["ONLY=1"]  # `env` replaces the environment


async def test_files_round_trip(sandbox, tmp_path):
    from rock.actions import Command, ReadFileRequest

    assert (await sandbox.write_file_by_path("héllo wörld\n", "/root/deep/a.txt")).success
    assert (await sandbox.read_file(ReadFileRequest(path="/root/deep/a.txt"))).content == "héllo wörld\n"
    assert (await sandbox.read_file(ReadFileRequest(path="/no/such/file"))).content == ""
    for size in (4096, 2 << 20):  # 2 MiB: past the client's 1 MiB OSS threshold; it falls back to /upload
        local = tmp_path / f"blob{size}"
        local.write_bytes(os.urandom(size))
        assert (await sandbox.upload_by_path(str(local), f"/data/up/blob{size}")).success
        out = await sandbox.execute(Command(command=["sha256sum", f"/data/up/blob{size}"]))
        assert out.stdout.split()[0] == hashlib.sha256(local.read_bytes()).hexdigest()


async def test_fs_and_process_helpers(sandbox, tmp_path):
    from rock.actions import Command

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "one.txt").write_text("1")
    (tmp_path / "src" / "two.txt").write_text("2")
    result = await sandbox.fs.upload_dir(str(tmp_path / "src"), "/tmp/updir")
    assert result.exit_code == 0
    assert (await sandbox.execute(Command(command=["cat", "/tmp/updir/one.txt", "/tmp/updir/two.txt"]))).stdout == "12"
    download = await sandbox.fs.download_file("/tmp/updir/one.txt", str(tmp_path / "back.txt"))
    assert not download.success and "OSS is not available" in download.message
    script = await sandbox.process.execute_script("#!/bin/bash\necho from-script\n")
    assert script.output == "from-script"
