"""`rock-envs image ...`: build the container image the docker runtime and backend use."""

from __future__ import annotations

from typing import Optional

import typer

app = typer.Typer(
    help="Build the rock-envs container image offline (nothing is pulled from a registry).",
    no_args_is_help=True,
)


@app.command()
def build(
    base: Optional[str] = typer.Option(
        None,
        "--base",
        help="A local base image with Python 3.11, e.g. python:3.11-slim. "
        "Default: a Debian bookworm base made with debootstrap (needs root once).",
    ),
    tag: Optional[str] = typer.Option(None, "--tag", help="An extra tag for the image (default rock-envs:latest)."),
    extra: list[str] = typer.Option(
        ["server", "agentic"], "--extra", help="rock-envs extras to install in the image (repeatable)."
    ),
) -> None:
    """Build the image if its sources changed, and print its tag (progress goes to stderr)."""
    # Imported here so that `rock-envs --help` does not pay for the Docker SDK.
    from rock_envs.core.progress import progress
    from rock_envs.sandbox.images import PHASES, ImageBuildError, build_image

    try:
        with progress("rock-envs image build", len(PHASES), "phases") as bar:
            built = build_image(
                base, tag, extras=extra, on_phase=lambda name: bar.update(PHASES.index(name), description=name)
            )
            bar.update(len(PHASES))
        typer.echo(built)
    except ImageBuildError as e:
        typer.echo(f"rock-envs image: ERROR: {e}", err=True)
        raise typer.Exit(1) from e
