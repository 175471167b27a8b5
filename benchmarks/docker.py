"""Containers: sandbox start-up and round trips on docker, and Sokoban through docker versus subprocess.

    python -m benchmarks.docker [--image TAG] [--rounds R] [--seconds S]

Rows, each with its comparison measured in the same run:
- create-to-ready p50/p99 of a sandbox (``create`` returns once the agent answers), 1 at a time and
  32 at once, docker versus the process runtime;
- a bash-session round trip (``arun("true", session=...)``) p50, docker versus process;
- Sokoban (game:Sokoban-v0-easy) steps/s at 64 and 512 envs, backend docker (envs packed into one
  container per core) versus subprocess (one worker process per core); target ratio >= 0.8.
Throughput rows keep each side's best round, alternating which goes first (noise only slows).
The image is ``--image``, else ``$ROCK_ENVS_IMAGE``, else the one ``rock-envs image build`` makes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import shutil
import statistics
import tempfile
import time
from typing import Any

import rock_envs
from rock_envs.sandbox.local import LocalSandboxAPI
from rock_envs.sandbox.manager import SandboxManager
from rock_envs.sandbox.models import RunRequest, SandboxSpec, SessionRequest

SOKOBAN = "game:Sokoban-v0-easy"
MOVES = ["\\boxed{up}", "\\boxed{down}", "\\boxed{left}", "\\boxed{right}"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def create_times(manager: SandboxManager, spec: SandboxSpec, concurrent: int, total: int) -> list[float]:
    times: list[float] = []

    async def one() -> None:
        started = time.perf_counter()
        info = await manager.create(spec, 120)
        times.append(time.perf_counter() - started)
        await manager.delete(info.id)

    done = 0
    while done < total:
        batch = min(concurrent, total - done)
        await asyncio.gather(*(one() for _ in range(batch)))
        done += batch
    return times


async def round_trips(manager: SandboxManager, spec: SandboxSpec, count: int) -> list[float]:
    info = await manager.create(spec, 120)
    ops = LocalSandboxAPI(manager)
    try:
        await ops.create_session(info.id, SessionRequest(session="bench"))
        req = RunRequest(cmd="true", session="bench", timeout=30)
        times = []
        for _ in range(count):
            started = time.perf_counter()
            await ops.run(info.id, req)
            times.append(time.perf_counter() - started)
        return times
    finally:
        await manager.delete(info.id)


async def sandbox_rows(image: str, rounds: int) -> list[tuple[str, float, float, str]]:
    results: dict[str, dict[str, list[float]]] = {}
    for runtime in ("docker", "process"):
        folder = tempfile.mkdtemp(prefix="rb-", dir="/tmp")
        manager = SandboxManager(folder, runtime_options={"docker": {"image": image}})
        spec = SandboxSpec(runtime=runtime, image=image if runtime == "docker" else None)  # type: ignore[arg-type]
        try:
            await manager.start()
            await create_times(manager, spec, 1, 2)  # warm up (the zygote, the engine's caches)
            results[runtime] = {
                "one": await create_times(manager, spec, 1, 4 * rounds),
                "many": await create_times(manager, spec, 32, 32 * max(1, rounds // 4)),
                "rtt": await round_trips(manager, spec, 200 * rounds),
            }
        finally:
            await manager.close()
            shutil.rmtree(folder, ignore_errors=True)
    d, p = results["docker"], results["process"]
    ms = 1000.0
    return [
        ("sandbox ready, 1 at a time, p50 (ms)", pct(d["one"], 0.5) * ms, pct(p["one"], 0.5) * ms, ""),
        ("sandbox ready, 1 at a time, p99 (ms)", pct(d["one"], 0.99) * ms, pct(p["one"], 0.99) * ms, ""),
        ("sandbox ready, 32 at once, p50 (ms)", pct(d["many"], 0.5) * ms, pct(p["many"], 0.5) * ms, ""),
        ("sandbox ready, 32 at once, p99 (ms)", pct(d["many"], 0.99) * ms, pct(p["many"], 0.99) * ms, ""),
        ("session round trip p50 (ms)", statistics.median(d["rtt"]) * ms, statistics.median(p["rtt"]) * ms, ""),
    ]


def sokoban_rate(venv: Any, seconds: float, rng: random.Random) -> float:
    n = venv.num_envs
    venv.reset(seed=0)
    for _ in range(3):  # warm up
        venv.step([rng.choice(MOVES) for _ in range(n)])
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        venv.step([rng.choice(MOVES) for _ in range(n)])
        steps += n
    return steps / (time.perf_counter() - started)


def sokoban_rows(image: str, rounds: int, seconds: float) -> list[tuple[str, float, float, str]]:
    rows = []
    rng = random.Random(0)
    for num_envs in (64, 512):
        docker_venv = rock_envs.make_vec(SOKOBAN, num_envs, backend="docker", image=image)
        sub_venv = rock_envs.make_vec(SOKOBAN, num_envs, backend="subprocess")
        try:
            rates: dict[str, list[float]] = {"docker": [], "subprocess": []}
            for r in range(rounds):
                order = [("docker", docker_venv), ("subprocess", sub_venv)]
                for name, venv in order if r % 2 == 0 else order[::-1]:
                    rates[name].append(sokoban_rate(venv, seconds, rng))
        finally:
            docker_venv.close()
            sub_venv.close()
        rows.append((f"Sokoban steps/s, {num_envs} envs", max(rates["docker"]), max(rates["subprocess"]), ">= 0.8"))
    return rows


def resolve_image(arg: str | None) -> str:
    if arg or os.environ.get("ROCK_ENVS_IMAGE"):
        return str(arg or os.environ["ROCK_ENVS_IMAGE"])
    from rock_envs.sandbox.images import build_image

    return build_image()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.docker")
    parser.add_argument("--image", default=None)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per Sokoban timing")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    image = resolve_image(args.image)
    rows = asyncio.run(sandbox_rows(image, args.rounds)) + sokoban_rows(image, max(2, args.rounds // 2), args.seconds)
    print(f"image {image}; {os.cpu_count()} cores")
    print(f"{'measure':<40}{'docker':>12}{'comparison':>12}{'':>12}{'ratio':>8}{'target':>9}")
    for name, docker_value, other, target in rows:
        against = "subprocess" if "Sokoban" in name else "process"
        ratio = docker_value / other if other else float("nan")
        verdict = ("  ok" if ratio >= 0.8 else "  MISSED") if target else ""
        print(f"{name:<40}{docker_value:>12,.1f}{other:>12,.1f}{against:>12}{ratio:>8.2f}{target:>9}{verdict}")


if __name__ == "__main__":
    main()
