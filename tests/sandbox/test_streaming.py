"""A 200 MB file goes through the server both ways without ever sitting whole in its memory."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from rock_envs.sandbox import SandboxConfig, SyncSandbox
from sandbox_helpers import Server

MB = 1 << 20


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_200_mb_upload_and_download_are_streamed(server: Server, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(src, "wb") as fh:
        for _ in range(200):
            block = os.urandom(MB)
            digest.update(block)
            fh.write(block)
    before = peak_rss(server.pid())
    with SyncSandbox(SandboxConfig(base_url=server.url, token=server.token)) as sb:
        assert sb.upload(str(src), "big.bin").size == 200 * MB
        assert sb.run("sha256sum big.bin").output.split()[0] == digest.hexdigest()
        out = tmp_path / "back.bin"
        assert sb.download("big.bin", str(out)).size == 200 * MB
    back = hashlib.sha256()
    with open(out, "rb") as fh:
        while block := fh.read(MB):
            back.update(block)
    assert back.hexdigest() == digest.hexdigest()
    grew = peak_rss(server.pid()) - before
    assert grew < 120 * MB, f"the server's peak memory grew by {grew / MB:.0f} MB for a 200 MB file"
