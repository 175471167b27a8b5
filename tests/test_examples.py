"""The examples run for real, top to bottom: the quick start script and its notebook."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.paths import PYTHON, ROOT


def test_quickstart_script_runs():
    out = subprocess.run(
        [PYTHON, str(ROOT / "examples" / "quickstart.py")], capture_output=True, text=True, timeout=180, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert "You are solving the Sokoban puzzle" in out.stdout
    assert "8 envs, 30 steps each: returns" in out.stdout


def test_quickstart_notebook_runs_top_to_bottom():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "(16, 4) episodes finished:" in text and "return" in text


def test_fork_groups_example_runs():
    out = subprocess.run(
        [PYTHON, str(ROOT / "examples" / "fork_groups.py"), "--groups", "2", "--size", "4"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout.count("advantages") == 2 and "best episode: env" in out.stdout and "its guesses again" in out.stdout
    )
