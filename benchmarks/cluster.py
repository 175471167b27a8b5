"""The control/data split on one machine: exec round trips/s and remote env steps/s through 1, 2 and 3
data replicas, and creates/s through the control plane, each beside one single server in the same run.

    python -m benchmarks.cluster [--quick] [--seconds S] [--rounds R]

Every server is its own process on 127.0.0.1 (a single `rock-envs serve`; a `--role control` on a
redis-server of its own; three `--role data` replicas), all alive at once; rounds alternate the
order of the sides, and each side keeps its best round (noise from other work only slows). The ratio
column is against the single server.

What limits each figure, and what a machine with more cores would show:

- exec round trips/s. Each `echo` costs CPU in three processes: the client (httpx), the server that
  routes it (FastAPI, one event loop, one core at most) and the sandbox's agent. On one server the
  server's core is the ceiling; replicas add a core each, so with C cores the split scales with the
  replicas until the clients or the agents take the rest (about C / (client + replica + agent cost)
  round trips per second). On this 2-core machine all of them share two cores, so more replicas
  cannot add throughput: they add processes contending for the same two cores (ratio ~1, or
  below). No exec touches Redis or the control plane (a replica caches each record).
- remote env steps/s: the same shape. Frames for one worker cross one replica; the engine sends
  one frame per worker per step, so a replica's cost is per worker-step, not per env-step, and with
  more cores, replicas scale it until the client's own loop (one core) is the limit.
- creates/s through the control plane: bound by starting sandboxes (fork, mounts, an agent's
  Python start: `max_starting` at once), as on one server; the control plane adds one Redis
  transaction per create and one per delete (a hash write and a publish: measured here about
  0.4 ms and 0.5 ms on loopback, against tens of milliseconds to start a sandbox). More cores: more sandboxes start at once, until the control plane's one event
  loop is the limit; its Redis writes stay a small share.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any, Awaitable, Callable

import rock_envs
from benchmarks import print_table
from benchmarks.remote import NoopEnv, Server
from rock_envs.sandbox import Sandbox, SandboxConfig
from rock_envs.sandbox.cluster.local_redis import LocalRedis, redis_problem

SANDBOXES = 12  # exec: sandboxes, each with LOOPS concurrent clients
LOOPS = 2


class Sides:
    """A single server, and a control plane with three replicas on one Redis."""

    def __init__(self) -> None:
        self.redis = LocalRedis().start()
        self.single = Server()
        self.control = Server("--role", "control", "--redis", self.redis.url)
        token = self.control.token
        self.replicas = [Server("--role", "data", "--control", self.control.url, "--token", token) for _ in range(3)]

    def config(self, replicas: int) -> SandboxConfig:
        if replicas == 0:
            return SandboxConfig(base_url=self.single.url, token=self.single.token)
        urls = [r.url for r in self.replicas[:replicas]]
        return SandboxConfig(base_url=self.control.url, token=self.control.token, data_urls=urls)

    def make_vec_kwargs(self, replicas: int) -> dict[str, Any]:
        config = self.config(replicas)
        return {"url": config.base_url, "token": config.token, "data_urls": config.data_urls}

    def stop(self) -> None:
        for server in [*self.replicas, self.control, self.single]:
            server.stop()
        self.redis.stop()


async def exec_rate(handles: list[Sandbox], seconds: float) -> float:
    """`echo hi` round trips per second, LOOPS loops per sandbox, for `seconds`."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop(sb: Sandbox) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await sb.arun("echo hi", session="s")
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(loop(sb) for sb in handles for _ in range(LOOPS)))
    return done / (time.perf_counter() - began)


async def exec_rows(sides: Sides, seconds: float, rounds: int) -> list[list[str]]:
    single = [await Sandbox(sides.config(0)).start() for _ in range(SANDBOXES)]
    split = [await Sandbox(sides.config(3)).start() for _ in range(SANDBOXES)]
    handles: dict[int, list[Sandbox]] = {0: single}
    for k in (1, 2, 3):  # the same sandboxes, reached through the first k replicas
        handles[k] = [await Sandbox.attach(sb.id, sides.config(k)) for sb in split]
    try:
        for sb in [*single, *split]:
            await sb.create_session("s")
        best = await alternate({k: lambda h=h: exec_rate(h, seconds) for k, h in handles.items()}, rounds)
    finally:
        for k in (1, 2, 3):
            for sb in handles[k]:
                await sb.detach()
        for sb in [*single, *split]:
            await sb.stop()
    return rows("exec round trips/s (`echo hi`, 12 sandboxes x 2 loops)", best, "/s")


def step_rate(venv: Any, seconds: float) -> float:
    actions = [0] * venv.num_envs
    steps, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        venv.step(actions)
        steps += venv.num_envs
    return steps / (time.perf_counter() - began)


async def step_rows(sides: Sides, seconds: float, rounds: int) -> list[list[str]]:
    venvs = {
        k: rock_envs.make_vec(NoopEnv, 256, backend="remote", num_workers=4, **sides.make_vec_kwargs(k))
        for k in (0, 1, 2, 3)
    }
    try:
        for venv in venvs.values():
            venv.reset(seed=0)

        async def measure(venv: Any) -> float:
            return await asyncio.to_thread(step_rate, venv, seconds)

        best = await alternate({k: lambda v=v: measure(v) for k, v in venvs.items()}, rounds)
    finally:
        for venv in venvs.values():
            venv.close()
    return rows("remote env steps/s (trivial env, 256 envs on 4 workers)", best, "/s")


async def create_rate(config: SandboxConfig, count: int, at_once: int = 8) -> float:
    gate = asyncio.Semaphore(at_once)
    made: list[Sandbox] = []

    async def one() -> None:
        async with gate:
            made.append(await Sandbox(config).start())

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    rate = count / (time.perf_counter() - began)
    await asyncio.gather(*(sb.stop() for sb in made))
    return rate


async def create_rows(sides: Sides, count: int, rounds: int) -> list[list[str]]:
    control = SandboxConfig(base_url=sides.control.url, token=sides.control.token)  # creates need no replica
    configs = {0: sides.config(0), 3: control}
    best = await alternate({k: lambda c=c: create_rate(c, count) for k, c in configs.items()}, rounds)
    return [
        ["creates/s, 8 at once", "single server", f"{best[0]:.1f}/s", "1.00"],
        ["", "control plane (Redis)", f"{best[3]:.1f}/s", f"{best[3] / best[0]:.2f}"],
    ]


async def alternate(sides: dict[int, Callable[[], Awaitable[float]]], rounds: int) -> dict[int, float]:
    best = {k: 0.0 for k in sides}
    for r in range(rounds):
        for k in list(sides) if r % 2 == 0 else list(sides)[::-1]:
            best[k] = max(best[k], await sides[k]())
    return best


def rows(what: str, best: dict[int, float], unit: str) -> list[list[str]]:
    names = {
        0: "single server",
        1: "control + 1 data replica",
        2: "control + 2 data replicas",
        3: "control + 3 data replicas",
    }
    return [
        [what if k == 0 else "", names[k], f"{best[k]:,.0f}{unit}", f"{best[k] / best[0]:.2f}"] for k in sorted(best)
    ]


async def run(seconds: float, rounds: int, creates: int) -> list[list[str]]:
    sides = Sides()
    try:
        return [
            *await exec_rows(sides, seconds, rounds),
            *await step_rows(sides, seconds, rounds),
            *await create_rows(sides, creates, rounds),
        ]
    finally:
        sides.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cluster")
    p.add_argument("--quick", action="store_true", help="short rounds (a smoke run)")
    p.add_argument("--seconds", type=float, default=None, help="seconds per measured round")
    p.add_argument("--rounds", type=int, default=None)
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if (problem := redis_problem()) is not None:
        raise SystemExit(f"benchmarks.cluster: {problem}")
    seconds = args.seconds or (1.0 if args.quick else 3.0)
    rounds = args.rounds or (2 if args.quick else 3)
    table = asyncio.run(run(seconds, rounds, 16 if args.quick else 48))
    print(f"control/data split on {len(os.sched_getaffinity(0))} cores, 127.0.0.1 only")
    print_table(["measure", "through", "rate", "ratio to single"], table)


if __name__ == "__main__":
    main()
