"""State: env snapshot/restore and fork, and sandbox fork, each beside the fresh start it replaces.

    python -m benchmarks.state [--rounds R] [--clones N] [--mb M] [--image TAG] [--no-docker]

Rows, each with its peer measured in the same run (the ratio is peer time / our time: above 1, the
snapshot path is faster than starting afresh):
- Sokoban-easy `snapshot()` + `restore()` of one env in this process (one worker), beside a
  `reset(seed)` of it; goal <= 1 ms;
- the same through a subprocess worker (`venv.snapshot([0])` + `venv.restore`), beside `venv.reset`;
- `venv.fork(0, 1..63)` on 2 subprocess workers, beside `venv.reset(seed=...)` of all 64; goal <= 20 ms;
- `sb.fork(n)` of a process-runtime sandbox holding M MB of files, per clone, beside a new sandbox
  plus an upload of the same files; goal <= 200 ms per clone;
- the same on docker (when an engine answers); goal <= 1 s per clone.
Each row keeps the best of its rounds (noise only slows), alternating which side goes first.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Callable

import rock_envs

SOKOBAN = "game:Sokoban-v0-easy"
MOVES = ["\\boxed{up}", "\\boxed{down}", "\\boxed{left}", "\\boxed{right}"]


def best(fn: Callable[[], Any], rounds: int, inner: int = 1) -> float:
    """The best mean seconds per call of `fn` over `rounds` rounds of `inner` calls."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - started) / inner)
    return min(times)


def side_by_side(ours: Callable[[], Any], peer: Callable[[], Any], rounds: int, inner: int) -> tuple[float, float]:
    a, b = [], []
    for r in range(rounds):
        order = [(ours, a), (peer, b)]
        for fn, out in order if r % 2 == 0 else order[::-1]:
            out.append(best(fn, 1, inner))
    return min(a), min(b)


def env_rows(rounds: int) -> list[tuple[str, float, float, float]]:
    rows = []
    env = rock_envs.make(SOKOBAN)
    env.reset(seed=0)
    for action in MOVES:
        env.step(action)

    def pair() -> None:
        env.restore(env.snapshot())

    ours, peer = side_by_side(pair, lambda: env.reset(seed=0), rounds, 200)
    rows.append(("Sokoban snapshot+restore, in process", ours, peer, 1e-3))
    env.close()

    with rock_envs.make_vec(SOKOBAN, 1, backend="subprocess", num_workers=1) as venv:
        venv.reset(seed=0)

        def remote_pair() -> None:
            venv.restore(venv.snapshot([0]), [0])

        ours, peer = side_by_side(remote_pair, lambda: venv.reset(seed=0), rounds, 100)
        rows.append(("Sokoban snapshot+restore, subprocess worker", ours, peer, 1e-3))

    with rock_envs.make_vec(SOKOBAN, 64, backend="subprocess", num_workers=2) as venv:
        venv.reset(seed=0)
        venv.step([MOVES[0]] * 64)
        targets = list(range(1, 64))
        ours, peer = side_by_side(lambda: venv.fork(0, targets), lambda: venv.reset(seed=0), rounds, 10)
        rows.append(("fork 1 env into 63, 2 subprocess workers", ours, peer, 20e-3))
    return rows


async def sandbox_row(runtime: str, clones: int, mb: int, rounds: int, workdir: str, image: str | None) -> tuple:
    from rock_envs.sandbox import Sandbox, SandboxConfig

    extra: dict[str, Any] = {"image": image} if runtime == "docker" and image else {}
    config = SandboxConfig(runtime=runtime, runtime_dir=os.path.join(workdir, "rt"), memory="2g", **extra)
    files = os.path.join(workdir, "files")
    os.makedirs(files, exist_ok=True)
    for k in range(mb):
        with open(os.path.join(files, f"part{k}.bin"), "wb") as fh:
            fh.write(os.urandom(1 << 20))
    ours, peer = [], []
    async with Sandbox(config) as sb:
        await sb.upload(files, "data")
        for r in range(rounds):

            async def fork() -> None:
                started = time.perf_counter()
                made = await sb.fork(clones)
                ours.append((time.perf_counter() - started) / clones)
                await asyncio.gather(*(c.stop() for c in made))

            async def fresh() -> None:
                started = time.perf_counter()

                async def one() -> Sandbox:
                    new = await Sandbox(config).start()
                    await new.upload(files, "data")
                    return new

                made = await asyncio.gather(*(one() for _ in range(clones)))
                peer.append((time.perf_counter() - started) / clones)
                await asyncio.gather(*(c.stop() for c in made))

            for step in (fork, fresh) if r % 2 == 0 else (fresh, fork):
                await step()
    return (
        f"sb.fork({clones}) of a {mb} MB {runtime} sandbox, per clone",
        min(ours),
        min(peer),
        0.2 if runtime == "process" else 1.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--clones", type=int, default=4)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument(
        "--image", default=None, help="docker: the image (default $ROCK_ENVS_IMAGE or rock-envs:latest)"
    )
    parser.add_argument("--no-docker", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    rows = env_rows(args.rounds)
    workdir = tempfile.mkdtemp(prefix="re-st-", dir="/tmp")
    try:
        sandbox_rounds = max(2, args.rounds // 3)
        rows.append(asyncio.run(sandbox_row("process", args.clones, args.mb, sandbox_rounds, workdir, None)))
        if not args.no_docker:
            try:
                import docker

                docker.from_env().ping()
            except Exception as exc:  # noqa: BLE001 - no engine: the row says so
                print(f"(docker row skipped: no engine answers: {exc})")
            else:
                row = asyncio.run(sandbox_row("docker", args.clones, args.mb, sandbox_rounds, workdir, args.image))
                rows.append(row)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'what':<52}{'ours':>11}{'fresh start':>13}{'ratio':>8}{'goal':>10}")
    for name, ours, peer, goal in rows:
        verdict = "ok" if ours <= goal else "MISSED"
        print(f"{name:<52}{ours * 1e3:>9.2f}ms{peer * 1e3:>11.2f}ms{peer / ours:>8.1f}{goal * 1e3:>8.0f}ms  {verdict}")


if __name__ == "__main__":
    main()
