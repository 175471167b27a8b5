"""`rock-envs list|info|play|run`: look at envs and step them from a terminal."""

from __future__ import annotations

import time
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

import rock_envs
from rock_envs.core.progress import progress
from rock_envs.requirements import missing_requirement, offline_ready

console = Console()


def list_command(
    pattern: str = typer.Argument("*", help="A glob over env ids, e.g. 'game:*'."),
    offline_only: bool = typer.Option(False, "--offline", help="Only ids that work offline."),
) -> None:
    """List env ids: where each comes from, and whether it works offline (or what it needs)."""
    table = Table("id", "source", "offline", "needs")
    shown = 0
    for spec in rock_envs.list_envs(pattern):
        ready = offline_ready(spec)
        if offline_only and not ready:
            continue
        table.add_row(spec.id, spec.source, "yes" if ready else "no", "" if ready else (spec.needs or ""))
        shown += 1
    console.print(table)
    console.print(f"{shown} env(s)")


def info_command(env_id: str) -> None:
    """Show an env's spec, spaces and a first observation."""
    spec = _spec_or_exit(env_id)
    for name in ("id", "source", "entry_point", "kwargs", "backend", "image", "cpus", "memory", "description"):
        console.print(f"[bold]{name}[/bold]: {getattr(spec, name)!r}")
    missing = missing_requirement(spec)
    if missing:
        console.print(f"[yellow]needs[/yellow]: {missing}")
        return
    with rock_envs.make(spec) as env:
        console.print(f"[bold]observation_space[/bold]: {env.observation_space}")
        console.print(f"[bold]action_space[/bold]: {env.action_space}")
        obs, _ = env.reset(seed=0)
        console.print("[bold]first observation (seed 0)[/bold]:", markup=True)
        console.print(obs if isinstance(obs, str) else repr(obs), markup=False)


def play_command(
    env_id: str = typer.Argument("game:Sokoban-v0-easy"),
    seed: Optional[int] = typer.Option(None, help="Seed of the first episode."),
) -> None:
    """Play a text env in the terminal: type an action (e.g. \\boxed{up}), see the board. Ctrl-D quits."""
    spec = _spec_or_exit(env_id)
    with rock_envs.make(spec) as env:
        obs, info = env.reset(seed=seed)
        _show(obs, info)
        total = 0.0
        while True:
            try:
                action = input("action> ").strip()
            except (EOFError, KeyboardInterrupt):
                console.print("\nbye")
                return
            if not action:
                continue
            if action in ("random", "?"):
                action = env.sample_random_action()
                console.print(f"(random) {action}", markup=False)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            _show(obs, info)
            console.print(f"reward {reward}  return {total}  terminated {terminated}  truncated {truncated}")
            if terminated or truncated:
                console.print("[bold]episode over[/bold]; a new one starts")
                total = 0.0
                obs, info = env.reset()
                _show(obs, info)


def run_command(
    env_id: str,
    steps: int = typer.Option(1000, help="Total steps to run."),
    policy: str = typer.Option("random", help="Only 'random' for now: the env's own random action."),
    seed: int = typer.Option(0, help="Seed of the first episode; episode k gets seed + k."),
    backend: str = typer.Option("local", help="local | subprocess | docker | ray | remote"),
) -> None:
    """Run a random policy: print each episode's return and length, then steps/s."""
    if policy != "random":
        console.print(f"[red]--policy {policy!r} is not known; only 'random' is.[/red]")
        raise typer.Exit(2)
    spec = _spec_or_exit(env_id)
    with rock_envs.make(spec, backend=backend) as env:  # type: ignore[arg-type]  # checked by make itself
        episode, ret, length = 0, 0.0, 0
        env.reset(seed=seed)
        started = time.perf_counter()
        with progress(f"rock-envs run {env_id}", steps, "steps") as bar:
            for k in range(steps):
                _, reward, terminated, truncated, _ = env.step(env.sample_random_action())
                ret, length = ret + float(reward), length + 1
                if terminated or truncated:
                    console.print(f"episode {episode}: return {ret:g}, {length} steps")
                    episode, ret, length = episode + 1, 0.0, 0
                    env.reset(seed=seed + episode)
                if k % 64 == 63:
                    bar.update(k + 1)
            bar.update(steps)
        elapsed = time.perf_counter() - started
    console.print(f"{steps} steps, {episode} episodes finished, {steps / elapsed:,.0f} steps/s")


def _spec_or_exit(env_id: str) -> rock_envs.EnvSpec:
    try:
        return rock_envs.spec(env_id)
    except rock_envs.UnknownEnvError as e:
        console.print(f"[red]{e}[/red]", markup=True)
        raise typer.Exit(2) from None


def _show(obs: object, info: dict) -> None:
    text = obs if isinstance(obs, str) else repr(obs)
    suffix = info.get("suffix") if isinstance(info, dict) else None
    console.print(text, markup=False)
    if isinstance(suffix, str) and suffix not in text:
        console.print(suffix, markup=False)
