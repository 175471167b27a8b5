"""Progress bars on a terminal (a real pty), nothing in a pipe, one plain line in a Jupyter kernel."""

from __future__ import annotations

import os
import pty
import select
import subprocess

import pytest

from tests.support.paths import PYTHON, ROOT

WORK = """
import asyncio, sys
import rock_envs
from rock_envs.sandbox import SandboxConfig, SandboxPool
venv = rock_envs.make_vec("CartPole-v1", 256, backend="subprocess", num_workers=2)
venv.close()

async def pool():
    async with SandboxPool(SandboxConfig(runtime_dir=sys.argv[1]), name="bar", size=8):
        pass

asyncio.run(pool())
print("done")
"""

BAR_TEXT = ("make_vec CartPole-v1: envs built", "SandboxPool bar: members ready")


def on_a_terminal(args: list[str]) -> bytes:
    """Run `args` with stdout and stderr on a pseudo-terminal; everything it wrote there."""
    main, child = pty.openpty()
    proc = subprocess.Popen(args, stdout=child, stderr=child, stdin=subprocess.DEVNULL, cwd=ROOT)
    os.close(child)
    out = b""
    while True:  # until it exits (a process it left behind may keep the terminal open)
        ready, _, _ = select.select([main], [], [], 0.2)
        try:
            chunk = os.read(main, 65536) if ready else b""
        except OSError:  # every writer closed its end
            break
        out += chunk
        if not ready and proc.poll() is not None:
            break
    os.close(main)
    assert proc.wait(timeout=300) == 0, out[-3000:]
    return out


def test_bars_on_a_terminal_and_silence_in_a_pipe(tmp_path, embedded_dir: str) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "work.py"
    script.write_text(WORK)
    shown = on_a_terminal([PYTHON, str(script), embedded_dir]).decode(errors="replace")
    for text in BAR_TEXT:
        assert text in shown, shown[-2000:]
    piped = subprocess.run([PYTHON, str(script), embedded_dir], capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "done\n"
    assert not any(text in piped.stderr for text in BAR_TEXT), piped.stderr


def test_rock_envs_run_shows_a_bar_only_on_a_terminal() -> None:
    cmd = [PYTHON, "-m", "rock_envs.cli", "run", "CartPole-v1", "--steps", "3000"]
    shown = on_a_terminal(cmd).decode(errors="replace")
    assert "rock-envs run CartPole-v1" in shown and "steps/s" in shown
    piped = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0 and "steps/s" in piped.stdout
    assert "rock-envs run CartPole-v1" not in piped.stdout + piped.stderr


def test_a_notebook_gets_one_plain_line() -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    cell = (
        "import rock_envs\nvenv = rock_envs.make_vec('CartPole-v1', 256, backend='local', num_workers=1)\nvenv.close()"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    nbclient.NotebookClient(
        notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    outputs = notebook.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"], outputs
    lines = "".join(o.get("text", "") for o in outputs).splitlines()
    assert len(lines) == 1 and lines[0].startswith("make_vec CartPole-v1: envs built: 256/256 on 1 workers in ")
