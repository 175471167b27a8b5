"""Envs that wait (a sleep standing in for I/O), stepped at once inside each worker, beside the
sequential worker: rows of `python -m benchmarks.vector`, or on their own:

    python -m benchmarks.vector_wait [--quick]

256 envs whose step waits 50 ms, on 2 subprocess workers: one after another (the sequential
figure, one vector step timed: it takes 128 x 50 ms), on 128 threads per worker
(`worker_threads=128`), and as `async def step` envs on each worker's asyncio loop. The ideal is
256 / 0.05 s = 5,120 steps/s; the target is >= 4,000 (0.8 of it).

A second table: 64 `code:RockTasks-v0` envs (task `add`, a right answer every step, autoreset in
the same step) on 2 subprocess workers, each step checked in a process sandbox of its own:
sequential (`worker_threads=1`) beside the default (the spec's 16 threads per worker), both alive
at once and timed in turn, steps/s and the seconds one vector step takes; once with tests that
only run (their CPU is the bound: the sandboxes share the 2 cores with everything else) and once
with tests that also wait 0.2 s, as tests waiting on I/O do.
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
ADD = "def add(a, b):\n    return a + b\n"
ANSWERS = {
    "tests run": f"```python\n{ADD}```",
    "tests wait 0.2 s": f"```python\nimport time\ntime.sleep(0.2)\n{ADD}```",  # as tests that wait on I/O
}


def code_rows(rounds: int = 2) -> list[tuple[str, str, float]]:
    """`(answer, how, steps/s)` of 64 code:RockTasks-v0 envs, sequential and overlapped (the
    default), both alive at once and timed one vector step at a time in turn; each keeps its best."""
    out = []
    for answer, text in ANSWERS.items():
        venvs = {}
        try:
            for how, threads in [("sequential", 1), ("overlapped (default 16)", None)]:
                venvs[how] = rock_envs.make_vec(
                    "code:RockTasks-v0",
                    CODE_ENVS,
                    backend="subprocess",
                    num_workers=WORKERS,
                    worker_threads=threads,
                    autoreset_mode="same_step",
                    task="add",
                )
                venvs[how].reset(seed=0)
                venvs[how].step([text] * CODE_ENVS)  # warm: every sandbox started
            best = dict.fromkeys(venvs, 0.0)
            for r in range(rounds):
                for how in list(venvs) if r % 2 == 0 else reversed(list(venvs)):
                    started = time.perf_counter()
                    _, rewards, *_ = venvs[how].step([text] * CODE_ENVS)
                    best[how] = max(best[how], CODE_ENVS / (time.perf_counter() - started))
                    assert rewards.all(), "a right answer failed its tests"
        finally:
            for venv in venvs.values():
                venv.close()
        out += [(answer, how, rate) for how, rate in best.items()]
    return out


def print_code_rows(table: list[tuple[str, str, float]]) -> None:
    sequential = {answer: rate for answer, how, rate in table if how == "sequential"}
    print(f"code:RockTasks-v0: {CODE_ENVS} envs, every step runs its tests in a process sandbox, {WORKERS} workers")
    print_table(
        ["answer", "how", "steps/s", "s per vector step", "x sequential"],
        [
            [answer, how, f"{rate:,.1f}", f"{CODE_ENVS / rate:.2f}", f"{rate / sequential[answer]:.1f}"]
            for answer, how, rate in table
        ],
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
    print_code_rows(code_rows(1 if args.quick else 2))


if __name__ == "__main__":
    main()
