"""Remote stepping: envs in sandboxes of one rock-envs server on 127.0.0.1 versus subprocess workers.

    python -m benchmarks.remote [--quick] [--rounds R] [--steps S]

Rows, each with its comparison measured in the same run (both vector envs alive at once, rounds
alternating which goes first; throughput keeps each side's best round, since noise only slows):
- 4096 game:Sokoban-v0-easy envs, `step()` on all: remote (process runtime, one sandbox per core)
  versus subprocess (one worker per core); target ratio >= 0.7. Also p50/p99 batch latency, the
  server's RSS and the total RSS (client + server + sandboxes, or client + workers).
- 1024 Sokoban envs with `send`/`recv` at batch_size 256.
- a trivial env (its step does nothing), 1024 envs on one worker: the per-env-step overhead the
  server adds, (remote - subprocess) time per step / 1024; target <= 50 us.
- the cost of metrics: the trivial env again, remote on two servers side by side, one serving
  /metrics (scraped every second) to a vector env made with `metrics=True` (its own registry also
  scraped every second), the other started with `--no-metrics` under a plain vector env; the ratio
  column is on/off (target >= 0.95).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable

import cloudpickle
import gymnasium as gym
import httpx

import rock_envs
from benchmarks.scraper import scraping

SOKOBAN = "game:Sokoban-v0-easy"
MOVES = ["\\boxed{up}", "\\boxed{down}", "\\boxed{left}", "\\boxed{right}"]


class NoopEnv(gym.Env):
    """Its step costs nothing: what is left is the cost of getting there and back."""

    observation_space = gym.spaces.Discrete(2)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        return 0, {}

    def step(self, action: Any):
        return 0, 0.0, False, False, {}


cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Server:
    def __init__(self, *args: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url, self.token = f"http://127.0.0.1:{self.port}", "bench-" + os.urandom(8).hex()
        self.dir = tempfile.mkdtemp(prefix="rb-", dir="/tmp")
        cmd = [
            sys.executable,
            "-m",
            "rock_envs.sandbox.server",
            "--port",
            str(self.port),
            "--token",
            self.token,
            "--runtime-dir",
            self.dir,
            *args,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("the server did not come up")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def rss_mb(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total / 1024


def tree(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(name))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        out.add(pid)
        todo += children.get(pid, [])
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def step_round(venv: Any, steps: int, actions: Callable[[], Any]) -> tuple[float, list[float]]:
    """(env steps/s, per-call latencies) for `steps` calls of `step()` on every env."""
    lat = []
    started = time.perf_counter()
    for _ in range(steps):
        a = actions()
        t = time.perf_counter()
        venv.step(a)
        lat.append(time.perf_counter() - t)
    return venv.num_envs * steps / (time.perf_counter() - started), lat


def recv_round(venv: Any, calls: int) -> tuple[float, list[float]]:
    """(env steps/s, per-`recv` latencies): keep every env busy, re-send what each recv returns."""
    lat, done = [], 0
    started = time.perf_counter()
    for _ in range(calls):
        t = time.perf_counter()
        ids, *_ = venv.recv()
        lat.append(time.perf_counter() - t)
        done += len(ids)
        venv.send([random.choice(MOVES) for _ in ids], ids)
    return done / (time.perf_counter() - started), lat


def compare(
    make: Callable[[str], Any],
    run: Callable[[Any], tuple[float, list[float]]],
    rounds: int,
    prime: Callable[[Any], None] = lambda v: None,
    sides: tuple[str, str] = ("remote", "subprocess"),
) -> dict[str, Any]:
    envs = {side: make(side) for side in sides}
    try:
        for venv in envs.values():
            prime(venv)
        best = {side: 0.0 for side in envs}
        lat: dict[str, list[float]] = {side: [] for side in envs}
        for r in range(rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                rate, times = run(envs[side])
                best[side] = max(best[side], rate)
                lat[side] += times
        return {"best": best, "lat": lat, "envs": envs}
    finally:
        for venv in envs.values():
            venv.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.remote")
    p.add_argument("--quick", action="store_true", help="few rounds and steps (a smoke run)")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--metrics-only", action="store_true", help="only the metrics on/off row")
    args = p.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 4)
    steps = args.steps or (5 if args.quick else 20)
    cores = len(os.sched_getaffinity(0))
    server = Server()
    rows = []
    try:

        def make(env_id: Any, n: int, workers: int, **kw: Any) -> Callable[[str], Any]:
            def _make(side: str) -> Any:
                extra = {"url": server.url, "token": server.token} if side == "remote" else {}
                return rock_envs.make_vec(env_id, n, backend=side, num_workers=workers, **extra, **kw)

            return _make

        if not args.metrics_only:  # the metrics row alone: --metrics-only
            # 1. 4096 Sokoban, step() on all
            n = 4096
            rss: dict[str, tuple[float, float]] = {}

            def sok_round(venv: Any) -> tuple[float, list[float]]:
                rate, lat = step_round(venv, steps, lambda: [random.choice(MOVES) for _ in range(n)])
                side = venv.group.name
                me = tree(os.getpid()) - ({server.proc.pid} | tree(server.proc.pid))
                if side == "remote":
                    rss[side] = (rss_mb({server.proc.pid}), rss_mb(tree(server.proc.pid)) + rss_mb({os.getpid()}))
                else:
                    rss[side] = (0.0, rss_mb(me))
                return rate, lat

            res = compare(make(SOKOBAN, n, cores), sok_round, rounds, prime=lambda v: v.reset(seed=0))
            b, lat = res["best"], res["lat"]
            rows.append(
                (
                    f"Sokoban {n} envs, step()",
                    b["remote"],
                    b["subprocess"],
                    f"{pct(lat['remote'], 0.5) * 1e3:.0f}/{pct(lat['remote'], 0.99) * 1e3:.0f}",
                    f"{pct(lat['subprocess'], 0.5) * 1e3:.0f}/{pct(lat['subprocess'], 0.99) * 1e3:.0f}",
                    f"{rss['remote'][0]:.0f}",
                    f"{rss['remote'][1]:.0f} vs {rss['subprocess'][1]:.0f}",
                )
            )

            # 2. 1024 Sokoban, send/recv at batch_size 256
            n = 1024

            def prime_recv(venv: Any) -> None:
                venv.reset(seed=0)
                venv.send([random.choice(MOVES) for _ in range(n)])

            res = compare(
                make(SOKOBAN, n, cores, batch_size=256), lambda v: recv_round(v, steps * 4), rounds, prime=prime_recv
            )
            b, lat = res["best"], res["lat"]
            rows.append(
                (
                    f"Sokoban {n} envs, send/recv 256",
                    b["remote"],
                    b["subprocess"],
                    f"{pct(lat['remote'], 0.5) * 1e3:.0f}/{pct(lat['remote'], 0.99) * 1e3:.0f}",
                    f"{pct(lat['subprocess'], 0.5) * 1e3:.0f}/{pct(lat['subprocess'], 0.99) * 1e3:.0f}",
                    "",
                    "",
                )
            )

            # 3. the per-env-step overhead of the server, over a batch of 1024 trivial envs on one worker
            n = 1024
            noop_steps = steps * 10
            res = compare(
                make(NoopEnv, n, 1),
                lambda v: step_round(v, noop_steps, lambda: [0] * n),
                rounds,
                prime=lambda v: v.reset(seed=0),
            )
            per = {side: statistics.median(res["lat"][side]) / n for side in res["lat"]}
            overhead_us = (per["remote"] - per["subprocess"]) * 1e6
            rows.append(
                (
                    f"trivial env, batch of {n}",
                    res["best"]["remote"],
                    res["best"]["subprocess"],
                    f"{pct(res['lat']['remote'], 0.5) * 1e3:.1f}/{pct(res['lat']['remote'], 0.99) * 1e3:.1f}",
                    f"{pct(res['lat']['subprocess'], 0.5) * 1e3:.1f}/{pct(res['lat']['subprocess'], 0.99) * 1e3:.1f}",
                    "",
                    f"overhead {overhead_us:.2f} us/env step",
                )
            )
        rows.append(metrics_row(1024, steps * 10, rounds))
    finally:
        server.stop()

    head = (
        "row",
        "remote steps/s",
        "subprocess steps/s",
        "ratio",
        "remote p50/p99 ms",
        "subproc p50/p99 ms",
        "server RSS MB",
        "total RSS MB remote vs subproc / note",
    )
    table = [head] + [
        (r[0], f"{r[1]:,.0f}", f"{r[2]:,.0f}", f"{r[1] / r[2]:.2f}", r[3], r[4], r[5], r[6]) for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    print(
        f"benchmarks.remote: one server on 127.0.0.1, process runtime, {cores} cores, {rounds} rounds x "
        f"{steps} steps{' (quick)' if args.quick else ''}"
    )
    for k, row in enumerate(table):
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)))
        if k == 0:
            print("-+-".join("-" * w for w in widths))
    print("targets: Sokoban 4096 ratio >= 0.7; overhead <= 50 us per env step; metrics on/off >= 0.95")


def metrics_row(n: int, steps: int, rounds: int) -> tuple[Any, ...]:
    """The trivial env on a server with metrics (scraped) and a vector env with `metrics=True` (scraped),
    against a `--no-metrics` server and a plain vector env, alternating rounds in one run."""
    on, off = Server(), Server("--no-metrics")
    stop = threading.Event()
    try:
        port = rock_envs.serve_metrics(0)
        scraper = scraping(
            [(on.url + "/metrics", {"Authorization": f"Bearer {on.token}"}), (f"http://127.0.0.1:{port}/metrics", {})],
            stop,
        )

        def make(side: str) -> Any:
            srv = on if side == "metrics on" else off
            return rock_envs.make_vec(
                NoopEnv, n, backend="remote", num_workers=1, url=srv.url, token=srv.token, metrics=side == "metrics on"
            )

        res = compare(
            make,
            lambda v: step_round(v, steps, lambda: [0] * n),
            rounds,
            prime=lambda v: v.reset(seed=0),
            sides=("metrics on", "metrics off"),
        )
        stop.set()
        scraper.join(timeout=10)
    finally:
        stop.set()
        on.stop()
        off.stop()
    b, lat = res["best"], res["lat"]
    return (
        f"trivial env {n}, remote: metrics on vs off",
        b["metrics on"],
        b["metrics off"],
        f"{pct(lat['metrics on'], 0.5) * 1e3:.1f}/{pct(lat['metrics on'], 0.99) * 1e3:.1f}",
        f"{pct(lat['metrics off'], 0.5) * 1e3:.1f}/{pct(lat['metrics off'], 0.99) * 1e3:.1f}",
        "",
        "columns: metrics on | off (both remote)",
    )


if __name__ == "__main__":
    main()
