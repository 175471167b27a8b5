"""examples/agentic_loop.py runs for real: N = 8 process sandboxes (embedded and via a server), N = 2 on docker."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

from tests.support import docker_support
from tests.support.paths import EXAMPLES, PYTHON
from tests.support.server import ServerProcess

EXAMPLE = EXAMPLES / "agentic_loop.py"


def run_example(*args: str) -> str:
    out = subprocess.run(
        [PYTHON, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "error::ResourceWarning"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_eight_process_sandboxes_embedded() -> None:
    check(run_example("--n", "8"), 8)


def test_infra_failed_rollouts_are_masked_and_retried() -> None:
    out = run_example("--n", "4", "--faults")
    check(out, 4)
    masked = [line for line in out.splitlines() if line.startswith("masked ")]
    assert len(masked) == 1 and "infra_error model/trainer_error" in masked[0], out
    assert "1 infra-failed rollouts masked and retried, 0 still failed" in out


def test_eight_process_sandboxes_through_a_server(server: ServerProcess) -> None:
    check(run_example("--n", "8", "--base-url", server.url, "--token", server.token), 8)


@pytest.mark.docker
def test_two_docker_sandboxes(embedded_dir: str) -> None:
    image = docker_support.test_image()
    if not _image_has_openai(image):
        docker_support.unavailable(
            f"image {image} has no `openai` package (put openai in an extra the image is built with)"
        )
    check(run_example("--n", "2", "--runtime", "docker", "--image", image), 2)


def check(stdout: str, n: int) -> None:
    """Every episode ran to its end with every call answered and recorded; every code task passed."""
    lines = [line for line in stdout.splitlines() if line.startswith("sb-")]
    assert len(lines) == n and all(line.endswith(" ok") for line in lines), stdout
    assert all("reward=1.0" in line for line in lines if " code:" in line), stdout
    assert f"summary: {n} episodes" in stdout


def _image_has_openai(image: str) -> bool:
    from rock_envs.sandbox import Sandbox, SandboxConfig

    async def probe() -> bool:
        async with Sandbox(SandboxConfig(runtime="docker", image=image)) as sb:
            return (await sb.arun("python3 -c 'import openai'", timeout=60)).exit_code == 0

    return asyncio.run(probe())
