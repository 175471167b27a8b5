"""Files go through the server both ways without ever sitting whole in its memory."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from rock_envs.sandbox import SandboxConfig, SyncSandbox
from tests.support.server import ServerProcess

MB = 1 << 20


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def write_random(path: Path, size_mb: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(size_mb):
            block = os.urandom(MB)
            digest.update(block)
            fh.write(block)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(MB):
            digest.update(block)
    return digest.hexdigest()


def round_trip(sb: SyncSandbox, tmp_path: Path, size_mb: int) -> None:
    src, back = tmp_path / f"up-{size_mb}.bin", tmp_path / f"back-{size_mb}.bin"
    digest = write_random(src, size_mb)
    assert sb.upload(str(src), src.name).size == size_mb * MB
    assert sb.run(f"sha256sum {src.name}").output.split()[0] == digest
    assert sb.download(src.name, str(back)).size == size_mb * MB
    assert sha256(back) == digest
    src.unlink()
    back.unlink()


@pytest.mark.slow
def test_the_servers_peak_memory_does_not_grow_with_the_file_size(server: ServerProcess, tmp_path: Path) -> None:
    """A 50 MB round trip sets the server's working set (whatever the machine's load makes of its
    buffers); a 200 MB one after it must not raise the peak by anything like the 150 MB more it carries.
    A server that held a whole file would grow by at least that; one that streams grows by its buffers."""
    with SyncSandbox(SandboxConfig(base_url=server.url, token=server.token)) as sb:
        round_trip(sb, tmp_path, 50)
        after_small = peak_rss(server.pid())
        round_trip(sb, tmp_path, 200)
        grew = peak_rss(server.pid()) - after_small
    assert grew < 40 * MB, f"the server's peak memory grew by {grew / MB:.0f} MB between a 50 MB and a 200 MB file"
