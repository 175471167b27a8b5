"""`rock-envs serve` and `rock-envs sandbox ...`, driven through typer's CliRunner against a real server."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from rock_envs.cli import sandbox as sandbox_cli
from rock_envs.cli import serve as serve_cli
from tests.support.server import ServerProcess

runner = CliRunner()


def test_sandbox_commands_end_to_end(server: ServerProcess, tmp_path: Path) -> None:
    opts = ["--url", server.url, "--token", server.token]
    created = runner.invoke(sandbox_cli.app, ["create", *opts, "--ttl", "120"])
    assert created.exit_code == 0, created.output
    sid = created.output.strip().splitlines()[-1]
    try:
        listed = runner.invoke(sandbox_cli.app, ["ls", *opts])
        assert listed.exit_code == 0 and sid in listed.output
        assert " running, " in listed.output and "leaked then swept" in listed.output  # the counts line

        ran = runner.invoke(sandbox_cli.app, ["exec", sid, *opts, "--", "echo hi; exit 3"])
        assert ran.exit_code == 3 and "hi" in ran.output

        (tmp_path / "in.txt").write_text("payload\n")
        assert runner.invoke(sandbox_cli.app, ["cp", str(tmp_path / "in.txt"), f"{sid}:d/in.txt", *opts]).exit_code == 0
        assert (
            runner.invoke(sandbox_cli.app, ["cp", f"{sid}:d/in.txt", str(tmp_path / "out.txt"), *opts]).exit_code == 0
        )
        assert (tmp_path / "out.txt").read_text() == "payload\n"
        assert runner.invoke(sandbox_cli.app, ["cp", f"{sid}:d", str(tmp_path / "tree"), *opts]).exit_code == 0
        assert (tmp_path / "tree" / "in.txt").read_text() == "payload\n"

        shell = runner.invoke(sandbox_cli.app, ["shell", sid, *opts], input="cd d\nexport X=7\npwd; echo $X\nexit\n")
        assert shell.exit_code == 0, shell.output
        assert "/d\n7\n" in shell.output
    finally:
        removed = runner.invoke(sandbox_cli.app, ["rm", sid, *opts])
    assert removed.exit_code == 0
    missing = runner.invoke(sandbox_cli.app, ["exec", sid, *opts, "--", "true"])
    assert missing.exit_code == 2 and sid in missing.output


def test_serve_rejects_an_unknown_runtime() -> None:
    app = typer.Typer()
    app.command()(serve_cli.serve)
    result = runner.invoke(app, ["--runtime", "vm"])
    assert result.exit_code != 0 and "process or docker" in result.output


def test_snapshot_commands_take_list_and_remove(server: ServerProcess) -> None:
    opts = ["--url", server.url, "--token", server.token]
    sid = runner.invoke(sandbox_cli.app, ["create", *opts, "--ttl", "120"]).output.strip().splitlines()[-1]
    try:
        assert runner.invoke(sandbox_cli.app, ["exec", sid, *opts, "--", "echo kept > f"]).exit_code == 0
        taken = runner.invoke(sandbox_cli.app, ["snapshot", "create", sid, "--name", "cli-snap", *opts])
        assert taken.exit_code == 0, taken.output
        snapshot_id = taken.output.strip().splitlines()[-1]
        listed = runner.invoke(sandbox_cli.app, ["snapshot", "ls", *opts])
        assert listed.exit_code == 0 and snapshot_id in listed.output and "cli-snap" in listed.output
        removed = runner.invoke(sandbox_cli.app, ["snapshot", "rm", snapshot_id, *opts])
        assert removed.exit_code == 0 and snapshot_id in removed.output
        assert snapshot_id not in runner.invoke(sandbox_cli.app, ["snapshot", "ls", *opts]).output
        again = runner.invoke(sandbox_cli.app, ["snapshot", "rm", snapshot_id, *opts])
        assert again.exit_code == 2 and f"no sandbox snapshot '{snapshot_id}'" in again.output
    finally:
        runner.invoke(sandbox_cli.app, ["rm", sid, *opts])
