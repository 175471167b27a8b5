"""Vector steps/s: rock-envs (subprocess) vs Gymnasium's SyncVectorEnv and AsyncVectorEnv, in one run.

    python -m benchmarks.vector [--quick] [--seconds S] [--rounds R]

For CartPole-v1 and game:Sokoban-v0-easy at 8, 64 and 512 envs (and 4096 Sokoban envs for rock-envs
alone), every contender steps with random valid actions for `--seconds` per round; the table keeps
each contender's best round (noise on a shared machine only ever slows a round down). Rounds
alternate the contenders' order. Peak RSS sums the caller and every process it started, sampled
while the contender runs. AsyncVectorEnv runs one process per env, so it is capped at 64 envs.

Targets (2 cores): CartPole at 64 envs >= 5x Async and >= 1.3x Sync; Sokoban at 512 envs >= 0.8x
(in-process single-env steps/s x workers); 4096 Sokoban envs in under 3 GB of RSS.
"""

from __future__ import annotations

import argparse
import gc
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium
import numpy as np
import psutil

import rock_envs
from rock_envs.backends import usable_cores

CARTPOLE, SOKOBAN = "CartPole-v1", "game:Sokoban-v0-easy"
MOVES = ["\\boxed{up}", "\\boxed{down}", "\\boxed{left}", "\\boxed{right}"]
ASYNC_CAP = 64  # AsyncVectorEnv runs one process per env


@dataclass
class Result:
    steps_per_s: float = 0.0
    peak_rss: int = 0


class RssSampler:
    """Peak of (caller RSS + RSS of every descendant process), sampled every 0.2 s."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        self.peak = max(self.peak, total)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def actions_for(env_id: str, n: int, count: int = 64) -> list[Any]:
    rng = random.Random(0)
    if env_id == CARTPOLE:
        return [np.array([rng.randrange(2) for _ in range(n)]) for _ in range(count)]
    return [[rng.choice(MOVES) for _ in range(n)] for _ in range(count)]


def run(make: Callable[[], Any], env_id: str, n: int, seconds: float) -> Result:
    """Build a vector env, step it, close it; steps/s and peak RSS.

    CartPole steps for `seconds` after a short warm-up. Sokoban-easy episodes all last 20 turns
    and its resets (room generation) cost far more than its steps, so it times exactly whole
    cycles of 21 vector steps from the reset: 20 steps and one autoreset of every env.
    """
    actions = actions_for(env_id, n)
    cycle = 21 if env_id == SOKOBAN else 0
    with RssSampler() as rss:
        venv = make()
        try:
            venv.reset(seed=0)
            for t in range(0 if cycle else 3):
                venv.step(actions[t])
            steps, started = 0, time.perf_counter()
            while True:
                venv.step(actions[steps % len(actions)])
                steps += 1
                elapsed = time.perf_counter() - started
                if cycle and steps % cycle == 0 and (elapsed >= seconds or n * steps >= 20_000):
                    break
                if not cycle and elapsed >= seconds and steps >= 5:
                    break
            rss.sample()
        finally:
            venv.close()
    gc.collect()
    return Result(steps * n / elapsed, rss.peak)


def single_steps_per_second(env_id: str, seconds: float) -> float:
    """In-process, one env, random valid actions, resets included: the per-core reference."""
    env = rock_envs.make(env_id)
    env.reset(seed=0)
    rng = random.Random(0)
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        _, _, terminated, truncated, _ = env.step(rng.choice(MOVES) if ":" in env_id else rng.randrange(2))
        steps += 1
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - started)
    env.close()
    return rate


def contenders(env_id: str, n: int, workers: int) -> dict[str, Callable[[], Any] | None]:
    def gym_env() -> Any:
        return gymnasium.make(env_id) if env_id == CARTPOLE else rock_envs.make(env_id)

    text = env_id != CARTPOLE
    return {
        "rock-envs": lambda: rock_envs.make_vec(env_id, n, backend="subprocess", num_workers=min(workers, n)),
        "sync": None if n > 512 else (lambda: gymnasium.vector.SyncVectorEnv([gym_env] * n)),
        "async": None if n > ASYNC_CAP else (lambda: gymnasium.vector.AsyncVectorEnv(
            [gym_env] * n, shared_memory=not text)),
    }


def gb(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vector", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short rounds, one round each (about a minute)")
    parser.add_argument("--seconds", type=float, default=None, help="stepping time per contender and round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per row; each contender keeps its best")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 3.0)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 2)
    workers = usable_cores()

    rows = [(CARTPOLE, 8), (CARTPOLE, 64), (CARTPOLE, 512), (SOKOBAN, 8), (SOKOBAN, 64), (SOKOBAN, 512), (SOKOBAN, 4096)]
    single = {env_id: max(single_steps_per_second(env_id, seconds) for _ in range(rounds)) for env_id in (CARTPOLE, SOKOBAN)}
    table = []
    for env_id, n in rows:
        best: dict[str, Result] = {}
        runs = contenders(env_id, n, workers)
        for r in range(rounds):
            order = list(runs.items()) if r % 2 == 0 else list(reversed(runs.items()))
            for name, make in order:
                if make is None:
                    continue
                result = run(make, env_id, n, seconds)
                keep = best.setdefault(name, Result())
                keep.steps_per_s = max(keep.steps_per_s, result.steps_per_s)
                keep.peak_rss = max(keep.peak_rss, result.peak_rss)
        table.append((env_id, n, best))
        print(f"  done: {env_id} x {n}", flush=True)

    print()
    print(f"rock-envs vector benchmark: {workers} usable cores, {workers} rock-envs workers, "
          f"{seconds:g} s x {rounds} round(s), best round kept; RSS = caller + all its processes, in GB")
    print(f"in-process single env: {CARTPOLE} {single[CARTPOLE]:,.0f} steps/s, {SOKOBAN} {single[SOKOBAN]:,.0f} steps/s")
    header = (f"{'env':<22}{'envs':>6}{'rock-envs/s':>13}{'sync/s':>11}{'async/s':>11}{'x sync':>8}{'x async':>9}"
              f"{'x ref':>7}{'RSS rock':>10}{'RSS sync':>10}{'RSS async':>10}")
    print(header)
    print("-" * len(header))
    for env_id, n, best in table:
        rock, sync, asyn = best.get("rock-envs"), best.get("sync"), best.get("async")
        ref = single[env_id] * workers

        def rate(res: Result | None) -> str:
            return f"{res.steps_per_s:,.0f}" if res else "capped"

        def ratio(res: Result | None) -> str:
            return f"{rock.steps_per_s / res.steps_per_s:.2f}" if res and rock else "-"

        print(f"{env_id:<22}{n:>6}{rate(rock):>13}{rate(sync):>11}{rate(asyn):>11}{ratio(sync):>8}{ratio(asyn):>9}"
              f"{rock.steps_per_s / ref if rock else 0:>7.2f}{gb(rock.peak_rss) if rock else '-':>10}"
              f"{gb(sync.peak_rss) if sync else '-':>10}{gb(asyn.peak_rss) if asyn else '-':>10}")
    print(f"x ref = rock-envs / (in-process single-env steps/s x {workers} workers). "
          f"'capped': AsyncVectorEnv (one process per env) runs up to {ASYNC_CAP} envs, SyncVectorEnv up to 512.")
    checks = {
        "CartPole 64: >= 5x async": _ratio(table, CARTPOLE, 64, "async") >= 5,
        "CartPole 64: >= 1.3x sync": _ratio(table, CARTPOLE, 64, "sync") >= 1.3,
        "Sokoban 512: >= 0.8x ref": _rock(table, SOKOBAN, 512).steps_per_s >= 0.8 * single[SOKOBAN] * workers,
        "Sokoban 4096: < 3 GB RSS": _rock(table, SOKOBAN, 4096).peak_rss < 3 * 2**30,
    }
    print("targets: " + "; ".join(f"{k} {'met' if ok else 'MISSED'}" for k, ok in checks.items()))


def _rock(table: list, env_id: str, n: int) -> Result:
    return next(best["rock-envs"] for e, m, best in table if e == env_id and m == n)


def _ratio(table: list, env_id: str, n: int, other: str) -> float:
    best = next(best for e, m, best in table if e == env_id and m == n)
    return best["rock-envs"].steps_per_s / best[other].steps_per_s if other in best else float("nan")


if __name__ == "__main__":
    main()
