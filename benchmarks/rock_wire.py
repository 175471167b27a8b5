"""ROCK's wire: rl-rock 1.11.0's own client against `rock-envs serve`, beside rock-envs' own SDK on
the same server in the same run. Loopback only.

    python -m benchmarks.rock_wire [--n 100] [--starts 10] [--steps 100]

Rows: `start()` until ready, an `arun("echo hi")` round trip in a session, and `rock.make` plus
`--steps` GEM steps (its per-step cost), each as p50 with rl-rock and with rock-envs' SDK (the same
sandbox kind: a writable root view; the remote backend for envs), and their ratio. For scale,
ROCK's own rocklet measured on this kind of machine: 111 ms per `run_in_session("echo hi")`, 1.58
ms per GEM step (the issue's numbers; not rerun here).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from typing import Any, Awaitable, Callable

from benchmarks import print_table
from benchmarks.sandbox import start_server

ENV_ID = "game:Sokoban-v0-easy"
ROCKLET = {"arun": "111 ms", "step": "1.58 ms"}


async def timed(fn: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return times


async def rock_client(url: str, token: str, n: int, starts: int) -> tuple[list[float], list[float]]:
    from rock.actions import CreateBashSessionRequest
    from rock.sdk.sandbox.client import Sandbox
    from rock.sdk.sandbox.config import SandboxConfig

    def config() -> SandboxConfig:
        return SandboxConfig(base_url=url, extra_headers={"Authorization": f"Bearer {token}"})

    boxes: list[Sandbox] = []

    async def start() -> None:
        boxes.append(Sandbox(config()))
        await boxes[-1].start()

    start_times = await timed(start, starts)
    sb = boxes[0]
    await sb.create_session(CreateBashSessionRequest(session="s"))
    await timed(lambda: sb.arun("echo hi", session="s"), 10)  # warm
    arun_times = await timed(lambda: sb.arun("echo hi", session="s"), n)
    await asyncio.gather(*(b.stop() for b in boxes))
    return start_times, arun_times


async def own_sdk(url: str, token: str, n: int, starts: int) -> tuple[list[float], list[float]]:
    from rock_envs.sandbox import Sandbox, SandboxConfig

    boxes: list[Sandbox] = []

    async def start() -> None:
        boxes.append(Sandbox(SandboxConfig(base_url=url, token=token, writable_root=True, memory="8g")))
        await boxes[-1].start()

    start_times = await timed(start, starts)
    sb = boxes[0]
    await sb.create_session("s")
    await timed(lambda: sb.arun("echo hi", session="s"), 10)
    arun_times = await timed(lambda: sb.arun("echo hi", session="s"), n)
    for b in boxes:
        await b.stop()
    return start_times, arun_times


def gem_steps(make: Callable[[], Any], steps: int) -> tuple[float, float]:
    """(seconds for make + reset, seconds per step) over `steps` steps."""
    t0 = time.perf_counter()
    env = make()
    env.reset(seed=0)
    made = time.perf_counter() - t0
    t1 = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step("\\boxed{up}" if i % 2 else "\\boxed{down}")
        if terminated or truncated:
            env.reset(seed=i)
    per_step = (time.perf_counter() - t1) / steps
    env.close()
    return made, per_step


def raw_gem_steps(url: str, token: str, steps: int) -> float:
    """Seconds per step on the same GEM route with one kept-alive client: the server's share of a step
    (rl-rock's client makes a new `httpx.Client`, with its TLS context, for every call)."""
    import httpx

    with httpx.Client(base_url=url + "/apis/v1/envs/gem", headers={"X-Key": token}, timeout=300) as client:
        gem_id = client.post("/make", json={"env_id": ENV_ID}).json()["sandbox_id"]
        client.post("/reset", json={"sandbox_id": gem_id, "seed": 0})
        t0 = time.perf_counter()
        for i in range(steps):
            client.post("/step", json={"sandbox_id": gem_id, "action": "\\boxed{up}" if i % 2 else "\\boxed{down}"})
        per_step = (time.perf_counter() - t0) / steps
        client.post("/close", json={"sandbox_id": gem_id})
    return per_step


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"


def main(n: int, starts: int, steps: int) -> None:
    import rock

    import rock_envs

    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    workdir = tempfile.mkdtemp(prefix="re-bench-", dir="/tmp")
    proc, url, token = start_server(os.path.join(workdir, "srv"))
    rows: list[tuple[str, str, str, str, str]] = []
    try:
        rock_start, rock_arun = asyncio.run(rock_client(url, token, n, starts))
        own_start, own_arun = asyncio.run(own_sdk(url, token, n, starts))
        os.environ["ROCK_BASE_URL"] = f"http://rock:{token}@{url.removeprefix('http://')}"
        rock_make, rock_step = gem_steps(lambda: rock.make(ENV_ID), steps)
        own_make, own_step = gem_steps(lambda: rock_envs.make(ENV_ID, backend="remote", url=url, token=token), steps)
        raw_step = raw_gem_steps(url, token, steps)

        def row(what: str, theirs: float, ours: float, ref: str = "") -> None:
            rows.append((what, ms(theirs), ms(ours), f"{theirs / ours:.2f}x", ref))

        row("start() until ready (p50)", statistics.median(rock_start), statistics.median(own_start))
        row(
            'arun("echo hi") in a session (p50)',
            statistics.median(rock_arun),
            statistics.median(own_arun),
            ROCKLET["arun"],
        )
        row("make + reset of a GEM env", rock_make, own_make)
        row(f"GEM step (mean of {steps})", rock_step, own_step, ROCKLET["step"])
        row("GEM step, same route, one kept-alive client", raw_step, own_step, ROCKLET["step"])
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)

    head = ("what", "rl-rock -> ROCK wire", "rock-envs SDK", "ROCK wire / SDK", "ROCK's rocklet (issue)")
    print_table(head, rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="echo round trips per client")
    parser.add_argument("--starts", type=int, default=10, help="sandbox starts per client")
    parser.add_argument("--steps", type=int, default=100, help="GEM steps per client")
    args = parser.parse_args()
    main(args.n, args.starts, args.steps)
