"""Envs that wait (a sleep standing in for I/O), stepped at once inside each worker, beside the
sequential worker: rows of `python -m benchmarks.vector`, or on their own:

    python -m benchmarks.vector_wait [--quick]

256 envs whose step waits 50 ms, on 2 subprocess workers: one after another (the sequential
figure, one vector step timed: it takes 128 x 50 ms), on 128 threads per worker
(`worker_threads=128`), and as `async def step` envs on each worker's asyncio loop. The ideal is
256 / 0.05 s = 5,120 steps/s; the target is >= 4,000 (0.8 of it).

A second table: 64 `code:RockTasks-v0` envs (task `add`, a right answer every step, autoreset in
the same step) on 2 subprocess workers, each step checked in a process sandbox of its own:
sequential (`worker_threads=1`) beside the default (the spec's 16 threads per worker), steps/s
and the seconds one vector step takes. The sandboxes run on the same 2 cores as everything else,
so the bound is their CPU, not the wait.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

import rock_envs
from benchmarks import print_table

WAIT, ENVS, WORKERS = 0.05, 256, 2
IDEAL = ENVS / WAIT
TARGET = 4000.0


class WaitingEnv(gymnasium.Env):
    """A step that waits `WAIT` seconds (time.sleep), then returns a draw of the env's generator."""

    observation_space = spaces.Box(0.0, 1.0, (1,), np.float64)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return np.array([self.np_random.random()]), {}

    def _result(self) -> tuple[Any, ...]:
        return np.array([self.np_random.random()]), 1.0, False, False, {}

    def step(self, action: int):
        time.sleep(WAIT)
        return self._result()


class AsyncWaitingEnv(WaitingEnv):
    """The same with `async def step`: it awaits `asyncio.sleep(WAIT)`."""

    async def step(self, action: int):  # type: ignore[override]
        await asyncio.sleep(WAIT)
        return self._result()


def steps_per_s(venv: Any, seconds: float, min_steps: int) -> float:
    venv.reset(seed=0)
    actions = np.zeros(venv.num_envs, dtype=np.int64)
    venv.step(actions)  # warm: threads started, the loop running
    steps, started = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - started < seconds:
        venv.step(actions)
        steps += 1
    return steps * venv.num_envs / (time.perf_counter() - started)


def rows(seconds: float = 2.0) -> list[tuple[str, float]]:
    """`(how, steps/s)` for the sequential worker, threads and async envs."""
    kinds = [
        ("sequential", WaitingEnv, {}, 0.0, 1),
        ("worker_threads=128", WaitingEnv, {"worker_threads": ENVS // WORKERS}, seconds, 5),
        ("async def step", AsyncWaitingEnv, {}, seconds, 5),
    ]
    out = []
    for how, env, kwargs, burst, min_steps in kinds:
        with rock_envs.make_vec(env, ENVS, backend="subprocess", num_workers=WORKERS, **kwargs) as venv:
            out.append((how, steps_per_s(venv, burst, min_steps)))
    return out


CODE_ENVS = 64
ADD = "```python\ndef add(a, b):\n    return a + b\n```"


def code_rows(vector_steps: int = 3) -> list[tuple[str, float]]:
    """`(how, steps/s)` of 64 code:RockTasks-v0 envs, sequential and overlapped (the default)."""
    out = []
    for how, threads, steps in [("sequential", 1, 1), ("overlapped (default 16)", None, vector_steps)]:
        with rock_envs.make_vec(
            "code:RockTasks-v0",
            CODE_ENVS,
            backend="subprocess",
            num_workers=WORKERS,
            worker_threads=threads,
            autoreset_mode="same_step",
            task="add",
        ) as venv:
            venv.reset(seed=0)
            venv.step([ADD] * CODE_ENVS)  # warm: every sandbox started
            started = time.perf_counter()
            for _ in range(steps):
                _, rewards, *_ = venv.step([ADD] * CODE_ENVS)
            out.append((how, steps * CODE_ENVS / (time.perf_counter() - started)))
            assert rewards.all(), "a right answer failed its tests"
    return out


def print_code_rows(table: list[tuple[str, float]]) -> None:
    sequential = table[0][1]
    print(f"code:RockTasks-v0: {CODE_ENVS} envs, every step runs its tests in a process sandbox, {WORKERS} workers")
    print_table(
        ["how", "steps/s", "s per vector step", "x sequential"],
        [[how, f"{rate:,.1f}", f"{CODE_ENVS / rate:.2f}", f"{rate / sequential:.1f}"] for how, rate in table],
    )


def print_rows(table: list[tuple[str, float]]) -> bool:
    """Print the rows; True when the target is met by both ways of overlapping."""
    sequential = table[0][1]
    print(f"envs that wait: {ENVS} envs, each step waits {WAIT * 1000:.0f} ms, {WORKERS} subprocess workers")
    header = f"{'how':<22}{'steps/s':>10}{'x sequential':>14}{'x ideal':>9}"
    print(header)
    print("-" * len(header))
    for how, rate in table:
        print(f"{how:<22}{rate:>10,.0f}{rate / sequential:>14.1f}{rate / IDEAL:>9.2f}")
    met = all(rate >= TARGET for _, rate in table[1:])
    print(
        f"x ideal = steps/s / ({ENVS} / {WAIT} s); target: threads and async >= {TARGET:,.0f} steps/s "
        f"{'met' if met else 'MISSED'}"
    )
    return met


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vector_wait", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter bursts")
    args = parser.parse_args(argv)
    print_rows(rows(0.5 if args.quick else 2.0))
    print()
    print_code_rows(code_rows(1 if args.quick else 3))


if __name__ == "__main__":
    main()
