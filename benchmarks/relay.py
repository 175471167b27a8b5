"""A sandbox on another Ray node, reached through its relay, beside one on the manager's machine.

    python -m benchmarks.relay [--quick] [--rounds R] [--steps S]

A two-node Ray cluster on 127.0.0.1 (a head, and a node named `far`) and one rock-envs server that
is a driver of it (RAY_ADDRESS). Rows, each side by side in the same run (both alive at once,
rounds alternating which goes first; each side's best round, since noise only slows):
- remote env steps: `make_vec(backend="remote")` on one worker, a trivial env (its step costs
  nothing) at 1 and 256 envs: the sandbox placed locally by the server (`sandbox_placement="local"`)
  versus on node `far` (`sandbox_placement="ray"`, `sandbox_resources={"far": 0.01}`), whose frames
  go server -> relay on `far` -> worker. Per-step time of each, and far/local.
- worker channel round trips: the embedded SDK's `open_worker()` in a local sandbox versus a
  Ray-placed one on `far` (one `Step` of one trivial env per round trip): what the relay adds to
  one frame each way, with no server in between.
On one machine the relay's TCP hop is loopback: the ratio is the relay's own cost (one more copy
through an asyncio byte pipe on the node), not a network's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

import cloudpickle

import rock_envs
from benchmarks import print_table
from benchmarks.remote import NoopEnv, Server, compare, step_round
from tests.support.ray_nodes import RayNodes

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
cloudpickle.register_pickle_by_value(sys.modules[__name__])
FAR = {"far": 0.01}


def noop(env_id: int) -> Any:
    return NoopEnv()


def remote_rows(server: Server, rounds: int, steps: int) -> list[tuple[str, float, float]]:
    rows = []
    for n in (1, 256):

        def make(side: str, n: int = n) -> Any:
            place: dict[str, Any] = {"sandbox_placement": "ray", "sandbox_resources": FAR} if side == "far" else {}
            return rock_envs.make_vec(
                NoopEnv, n, backend="remote", url=server.url, token=server.token, num_workers=1, **place
            )

        res = compare(
            make,
            lambda v, n=n: step_round(v, steps, lambda: [0] * n),
            rounds,
            prime=lambda v: v.reset(seed=0),
            sides=("far", "local"),
        )
        per = {side: statistics.median(res["lat"][side]) for side in res["lat"]}
        rows.append((f"remote env step, trivial env x {n}, 1 worker", per["far"], per["local"]))
    return rows


async def channel_rounds(config: Any, rounds: int, calls: int) -> list[float]:
    from rock_envs.sandbox import Sandbox
    from rock_envs.worker.protocol import Make, Reset, Step, encode

    times: list[float] = []
    async with Sandbox(config) as sb:
        async with await sb.open_worker() as worker:
            await worker.request(encode(Make([0], cloudpickle.dumps(noop))), timeout=120)
            await worker.request(encode(Reset([0], [0], [None])))
            step = encode(Step([0], [0]))
            for _ in range(rounds):
                started = time.perf_counter()
                for _ in range(calls):
                    await worker.request(step)
                times.append((time.perf_counter() - started) / calls)
    return times


def channel_row(runtime_dir: str, rounds: int, calls: int) -> tuple[str, float, float]:
    from rock_envs.sandbox import SandboxConfig

    configs = {
        "far": SandboxConfig(placement="ray", resources=FAR, runtime_dir=runtime_dir),
        "local": SandboxConfig(runtime_dir=runtime_dir),
    }

    async def both() -> dict[str, float]:
        best = {side: float("inf") for side in configs}
        for r in range(rounds):  # alternate which goes first; each round is a fresh sandbox pair
            for side in configs if r % 2 == 0 else reversed(list(configs)):
                best[side] = min(best[side], min(await channel_rounds(configs[side], 3, calls)))
        return best

    best = asyncio.run(both())
    return ("worker channel round trip (embedded SDK, 1 env)", best["far"], best["local"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 4)
    steps = args.steps or (200 if args.quick else 1000)
    cluster = RayNodes()
    runtime_dir = tempfile.mkdtemp(prefix="rbr-", dir="/tmp")
    server: Server | None = None
    try:
        cluster.start_head(num_cpus=2)
        cluster.add_node("far", num_cpus=2)
        os.environ["RAY_ADDRESS"] = cluster.address  # the server's, and this process's embedded manager's
        server = Server()
        rows = remote_rows(server, rounds, steps)
        rows.append(channel_row(runtime_dir, rounds, steps))
    finally:
        if server is not None:
            server.stop()
        import ray

        ray.shutdown()
        cluster.stop()
        shutil.rmtree(runtime_dir, ignore_errors=True)
    print(
        f"benchmarks.relay: a sandbox on Ray node `far` (through its relay) vs one placed locally, "
        f"{rounds} rounds x {steps} steps{' (quick)' if args.quick else ''}; median per step (channel: best round's mean)"
    )
    head = ("row", "far (relay) us", "local us", "far/local")
    print_table(head, [(r[0], f"{r[1] * 1e6:,.0f}", f"{r[2] * 1e6:,.0f}", f"{r[1] / r[2]:.2f}") for r in rows])


if __name__ == "__main__":
    main()
