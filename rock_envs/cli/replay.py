"""`rock-envs replay PATH [--backend B]`: re-run recorded episodes, report where one first differs.

Exit code 0 when every episode replays identically, 1 when one differs (its first differing step,
field, expected and got are printed), 2 for a path that holds no episode record or an unknown env.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from rich.console import Console

import rock_envs
from rock_envs.trajectories import episodes_in, verify

console = Console()


def replay_command(
    path: str = typer.Argument(..., help="An episode record (.jsonl, from record=DIR) or a directory of them."),
    backend: str = typer.Option("local", "--backend", "-b", help="local | subprocess | docker | ray | remote"),
    image: Optional[str] = typer.Option(None, help="docker: the image to run the env in."),
    url: Optional[str] = typer.Option(None, help="remote: the sandbox server, e.g. http://127.0.0.1:8080."),
    token: Optional[str] = typer.Option(None, help="remote: its token (default: $ROCK_ENVS_TOKEN or the token file)."),
) -> None:
    """Re-run recorded episodes on a backend and report the first step where one differs."""
    options = {k: v for k, v in {"image": image, "url": url, "token": token}.items() if v is not None}
    envs: dict[str, Any] = {}  # one env per (id, kwargs): episodes of one run share it
    differing = 0
    try:
        for episode in episodes_in(path):
            key = json.dumps([episode.env_id, episode.header.get("kwargs")], sort_keys=True)
            if key not in envs:
                kwargs = dict(episode.header.get("kwargs") or {})
                envs[key] = rock_envs.make(episode.env_id, backend, **kwargs, **options)  # type: ignore[arg-type]
            report = verify(episode, env=envs[key])
            differing += not report.identical
            console.print(str(report), style=None if report.identical else "red", markup=False, soft_wrap=True)
    except (rock_envs.EnvArgumentError, rock_envs.UnknownEnvError) as exc:
        console.print(str(exc), style="red", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    finally:
        for env in envs.values():
            env.close()
    if differing:
        raise typer.Exit(1)
