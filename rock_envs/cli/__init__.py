"""The `rock-envs` command: envs (list, info, play, run, replay), and the sandbox layer's commands."""

from __future__ import annotations

import typer

from rock_envs.cli import envs, replay

app = typer.Typer(
    help="rock-envs: any env id, one reset/step face, run where you pick.", no_args_is_help=True, add_completion=False
)
app.command("list")(envs.list_command)
app.command("info")(envs.info_command)
app.command("play")(envs.play_command)
app.command("run")(envs.run_command)
app.command("replay")(replay.replay_command)


def _add_optional_commands() -> None:
    """Commands of the sandbox layer need its extras (fastapi, docker); without them they are absent."""
    try:
        from rock_envs.cli import image

        app.add_typer(image.app, name="image")
    except ImportError:
        pass
    try:
        from rock_envs.cli import dashboard, sandbox, serve

        app.command("serve")(serve.serve)
        app.command("dashboard")(dashboard.dashboard)
        app.add_typer(sandbox.app, name="sandbox")
    except ImportError:
        pass


_add_optional_commands()


def main() -> None:
    app()
