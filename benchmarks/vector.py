"""Vector steps/s: rock-envs (subprocess; and with `caller_worker=True`, worker 0 stepped in the caller)
vs Gymnasium's SyncVectorEnv and AsyncVectorEnv, in one run.

    python -m benchmarks.vector [--quick] [--seconds S] [--rounds R]

For CartPole-v1 and game:Sokoban-v0-easy at 8, 64 and 512 envs (and 4096 Sokoban envs for rock-envs
alone), the contenders of a row (rock-envs, SyncVectorEnv, AsyncVectorEnv and one in-process env,
the per-core reference) are all alive at once and timed in alternating bursts with random valid
actions; each keeps its best burst, since load from elsewhere only ever slows a burst down. Peak RSS
is the caller's plus that of every process the contender started. AsyncVectorEnv runs one process
per env, so it is capped at 64 envs; SyncVectorEnv at 512.

Targets (2 cores): CartPole at 64 envs >= 5x Async and >= 1.3x Sync (checked for both rock-envs rows); Sokoban at 512 envs >= 0.8x
(in-process single-env steps/s x workers); 4096 Sokoban envs in under 3 GB of RSS. A second table
(benchmarks/vector_native.py): CartPole x 64 and x 1,024 with `vectorize="native"` beside Gymnasium's
own CartPoleVectorEnv and EnvPool (its column only where it installs). A third
(benchmarks/vector_wait.py): 256 envs whose step waits 50 ms, on 2 workers, overlapped on threads
and as async envs (>= 4,000 steps/s) beside the sequential worker; and 64 `code:RockTasks-v0` envs
checked in sandboxes, sequential and overlapped.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium
import numpy as np
import psutil

import rock_envs
from benchmarks import vector_wait
from rock_envs.backends import usable_cores

CARTPOLE, SOKOBAN = "CartPole-v1", "game:Sokoban-v0-easy"
MOVES = ["\\boxed{up}", "\\boxed{down}", "\\boxed{left}", "\\boxed{right}"]
ASYNC_CAP = 64  # AsyncVectorEnv runs one process per env


@dataclass
class Result:
    steps_per_s: float = 0.0
    peak_rss: int = 0
    caller_cpu: float = 0.0
    """Seconds of this process's CPU per vector step, in the best burst."""
    others_cpu: float = 0.0
    """Seconds of CPU of the processes the contender started (its workers) per vector step, same burst."""


def cpu_of(pids: set[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def rss_of(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            pass
    return total


def descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def with_ancestors(pids: set[int]) -> set[int]:
    """`pids` plus every process between them and us (the fork server, for rock-envs)."""
    me, out = os.getpid(), set(pids)
    for pid in pids:
        try:
            parent = psutil.Process(pid).parent()
            while parent is not None and parent.pid != me:
                out.add(parent.pid)
                parent = parent.parent()
        except psutil.Error:
            pass
    return out


def actions_for(env_id: str, n: int, count: int = 64) -> list[Any]:
    rng = random.Random(0)
    if env_id == CARTPOLE:
        return [np.array([rng.randrange(2) for _ in range(n)]) for _ in range(count)]
    return [[rng.choice(MOVES) for _ in range(n)] for _ in range(count)]


class Contender:
    """One vector env kept alive for a whole row; `burst()` times it once, `rss()` sums its processes.

    CartPole bursts last `seconds`. Sokoban-easy episodes all last 20 turns and its resets (room
    generation) cost far more than its steps, so a Sokoban burst is whole cycles of 21 vector
    steps: 20 steps and one autoreset of every env.
    """

    def __init__(self, name: str, make: Callable[[], Any], env_id: str, n: int, whole_cycles: bool = True):
        self.name, self.env_id, self.n = name, env_id, n
        before = descendants()
        self.venv = make()
        self.venv.reset(seed=0)
        self.pids = with_ancestors(descendants() - before)
        self.actions = actions_for(env_id, n)
        self.t = 0
        self.result = Result()
        self.cycle = 21 if env_id == SOKOBAN and whole_cycles else 0
        if not self.cycle:
            for _ in range(3):
                self._step()

    def _step(self) -> None:
        self.venv.step(self.actions[self.t % len(self.actions)])
        self.t += 1

    def burst(self, seconds: float) -> None:
        caller, others = time.process_time(), cpu_of(self.pids)
        steps, started = 0, time.perf_counter()
        while True:
            self._step()
            steps += 1
            elapsed = time.perf_counter() - started
            if self.cycle:
                if self.t % self.cycle == 0 and (elapsed >= seconds or self.n * steps >= 20_000):
                    break
            elif elapsed >= seconds and steps >= 5:
                break
        if steps * self.n / elapsed > self.result.steps_per_s:
            self.result.steps_per_s = steps * self.n / elapsed
            self.result.caller_cpu = (time.process_time() - caller) / steps
            self.result.others_cpu = (cpu_of(self.pids) - others) / steps
        self.result.peak_rss = max(self.result.peak_rss, psutil.Process().memory_info().rss + rss_of(self.pids))

    def close(self) -> None:
        self.venv.close()


class SingleEnv:
    """The reference: one env in this process, random valid actions, resets included."""

    name = "single"

    def __init__(self, env_id: str):
        self.env = rock_envs.make(env_id)
        self.env.reset(seed=0)
        self.env_id = env_id
        self.rng = random.Random(0)
        self.result = Result()

    def burst(self, seconds: float) -> None:
        steps, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            action = self.rng.choice(MOVES) if ":" in self.env_id else self.rng.randrange(2)
            _, _, terminated, truncated, _ = self.env.step(action)
            steps += 1
            if terminated or truncated:
                self.env.reset()
        self.result.steps_per_s = max(self.result.steps_per_s, steps / (time.perf_counter() - started))

    def close(self) -> None:
        self.env.close()


def contenders(env_id: str, n: int, workers: int) -> dict[str, Callable[[], Any] | None]:
    def gym_env() -> Any:
        return gymnasium.make(env_id) if env_id == CARTPOLE else rock_envs.make(env_id)

    text = env_id != CARTPOLE
    return {
        "rock-envs": lambda: rock_envs.make_vec(env_id, n, backend="subprocess", num_workers=min(workers, n)),
        "caller": None
        if n > 512
        else (
            lambda: rock_envs.make_vec(env_id, n, backend="subprocess", num_workers=min(workers, n), caller_worker=True)
        ),
        "sync": None if n > 512 else (lambda: gymnasium.vector.SyncVectorEnv([gym_env] * n)),
        "async": None
        if n > ASYNC_CAP
        else (lambda: gymnasium.vector.AsyncVectorEnv([gym_env] * n, shared_memory=not text)),
    }


def run_row(
    env_id: str, n: int, workers: int, seconds: float, rounds: int, quick: bool = False
) -> tuple[dict[str, Result], float]:
    """All contenders alive at once, timed in alternating bursts: load from elsewhere hits them alike."""
    makers = [
        (lambda name=name, make=make: Contender(name, make, env_id, n, whole_cycles=not (quick and n > 512)))
        for name, make in contenders(env_id, n, workers).items()
        if make is not None
    ]
    alive = time_alternating([*makers, lambda: SingleEnv(env_id)], seconds, rounds)
    single = next(c for c in alive if isinstance(c, SingleEnv)).result.steps_per_s
    return {c.name: c.result for c in alive if not isinstance(c, SingleEnv)}, single


def time_alternating(makers: list[Callable[[], Any]], seconds: float, rounds: int) -> list[Any]:
    """Make every contender, time them in alternating bursts (load from elsewhere hits them alike),
    close them; the contenders, each with its best burst in `result`."""
    alive: list[Any] = []
    try:
        for make in makers:
            alive.append(make())
        for r in range(rounds):
            for c in alive if r % 2 == 0 else list(reversed(alive)):
                c.burst(seconds)
    finally:
        for c in alive:
            c.close()
        gc.collect()
    return alive


def gb(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vector", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short burst per contender")
    parser.add_argument("--seconds", type=float, default=None, help="length of one burst (Sokoban: whole cycles)")
    parser.add_argument("--rounds", type=int, default=None, help="bursts per contender; each keeps its best")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (0.5 if args.quick else 1.0)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 4)
    workers = usable_cores()

    rows = [
        (CARTPOLE, 8),
        (CARTPOLE, 64),
        (CARTPOLE, 512),
        (SOKOBAN, 8),
        (SOKOBAN, 64),
        (SOKOBAN, 512),
        (SOKOBAN, 4096),
    ]
    load_before = os.getloadavg()[0]
    table = []
    for env_id, n in rows:
        best, single = run_row(env_id, n, workers, seconds, rounds, args.quick)
        table.append((env_id, n, best, single))
        print(f"  done: {env_id} x {n}", flush=True)

    print()
    print(
        f"rock-envs vector benchmark: {workers} usable cores, {workers} rock-envs workers, "
        f"{seconds:g} s x {rounds} round(s), best round kept; RSS = caller + all its processes, in GB"
    )
    print(
        f"load average (1 min) before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f}; "
        "`single` = one env in-process, timed in the same row"
    )
    header = (
        f"{'env':<22}{'envs':>6}{'rock-envs/s':>13}{'caller/s':>11}{'sync/s':>11}{'async/s':>11}{'single/s':>10}"
        f"{'x sync':>8}{'c x sync':>9}{'x async':>9}{'x ref':>7}{'RSS rock':>10}{'RSS sync':>10}{'RSS async':>10}"
    )
    print(header)
    print("-" * len(header))
    for env_id, n, best, single in table:
        rock, sync, asyn, caller = best.get("rock-envs"), best.get("sync"), best.get("async"), best.get("caller")
        ref = single * workers

        def rate(res: Result | None) -> str:
            return f"{res.steps_per_s:,.0f}" if res else "capped"

        def ratio(res: Result | None, rock: Result | None = rock) -> str:
            return f"{rock.steps_per_s / res.steps_per_s:.2f}" if res and rock else "-"

        print(
            f"{env_id:<22}{n:>6}{rate(rock):>13}{rate(caller):>11}{rate(sync):>11}{rate(asyn):>11}{single:>10,.0f}"
            f"{ratio(sync):>8}{ratio(sync, caller):>9}{ratio(asyn):>9}"
            f"{rock.steps_per_s / ref if rock else 0:>7.2f}{gb(rock.peak_rss) if rock else '-':>10}"
            f"{gb(sync.peak_rss) if sync else '-':>10}{gb(asyn.peak_rss) if asyn else '-':>10}"
        )
    print(
        f"caller = rock-envs with caller_worker=True (worker 0 stepped in the caller); c x sync = caller / sync. "
        f"x ref = rock-envs / (in-process single-env steps/s x {workers} workers). "
        f"'capped': AsyncVectorEnv (one process per env) runs up to {ASYNC_CAP} envs, SyncVectorEnv up to 512."
        + (" --quick: the 4096 row times a few steps without resets (its RSS is what counts)." if args.quick else "")
    )
    checks = {
        "CartPole 64: >= 5x async": _ratio(table, CARTPOLE, 64, "async") >= 5,
        "CartPole 64: >= 1.3x sync": _ratio(table, CARTPOLE, 64, "sync") >= 1.3,
        "CartPole 64 caller_worker: >= 1.3x sync": _ratio(table, CARTPOLE, 64, "sync", "caller") >= 1.3,
        "Sokoban 512: >= 0.8x ref": _rock(table, SOKOBAN, 512).steps_per_s
        >= 0.8 * _single(table, SOKOBAN, 512) * workers,
        "Sokoban 4096: < 3 GB RSS": _rock(table, SOKOBAN, 4096).peak_rss < 3 * 2**30,
    }
    for env_id, n, best, _ in table:
        if env_id == CARTPOLE and "sync" in best:
            rock, sync, caller = best["rock-envs"], best["sync"], best["caller"]
            print(
                f"CPU per vector step, {env_id} x {n}: rock-envs caller {rock.caller_cpu * 1e6:,.0f} us + workers "
                f"{rock.others_cpu * 1e6:,.0f} us; caller_worker caller {caller.caller_cpu * 1e6:,.0f} us + workers "
                f"{caller.others_cpu * 1e6:,.0f} us; sync {sync.caller_cpu * 1e6:,.0f} us (best bursts; spinning counts)"
            )
    print("targets: " + "; ".join(f"{k} {'met' if ok else 'MISSED'}" for k, ok in checks.items()))
    print()
    from benchmarks import vector_native  # it imports this module's Contender

    vector_native.print_rows(vector_native.rows(seconds, rounds))
    print()
    vector_wait.print_rows(vector_wait.rows(0.5 if args.quick else 2.0))
    print()
    vector_wait.print_code_rows(vector_wait.code_rows(1 if args.quick else 2))


def _rock(table: list, env_id: str, n: int) -> Result:
    return next(best["rock-envs"] for e, m, best, _ in table if e == env_id and m == n)


def _single(table: list, env_id: str, n: int) -> float:
    return next(single for e, m, _, single in table if e == env_id and m == n)


def _ratio(table: list, env_id: str, n: int, other: str, mine: str = "rock-envs") -> float:
    best = next(best for e, m, best, _ in table if e == env_id and m == n)
    return best[mine].steps_per_s / best[other].steps_per_s if other in best else float("nan")


if __name__ == "__main__":
    main()
