"""Native vector envs (`vectorize="native"`) beside Gymnasium's own and EnvPool's, in one run:
rows of `python -m benchmarks.vector`, or on their own:

    python -m benchmarks.vector_native [--quick]

CartPole-v1 at 64 and 1,024 envs: rock-envs with one `CartPoleVectorEnv` per worker (subprocess,
one worker per core; the same with worker 0 in the caller, `caller_worker=True`; and the local
backend, in this process), Gymnasium's `CartPoleVectorEnv`
alone in this process (the same numpy code with no engine around it), and EnvPool's C++ CartPole
(`num_threads` = usable cores) where `pip install envpool` works (its column says "n/a" with a note
where not). All are alive at once and timed in alternating bursts; each keeps its best.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

import gymnasium
import numpy as np

import rock_envs
from benchmarks.vector import CARTPOLE, Contender, time_alternating
from rock_envs.backends import usable_cores

SIZES = (64, 1024)


class EnvPoolVec:
    """EnvPool's CartPole behind the `reset(seed=)` / `step` / `close` the benchmark drives."""

    def __init__(self, n: int, threads: int):
        import envpool

        self.env = envpool.make(CARTPOLE, env_type="gymnasium", num_envs=n, num_threads=threads, seed=0)

    def reset(self, seed: int | None = None) -> Any:
        return self.env.reset()

    def step(self, actions: np.ndarray) -> Any:
        return self.env.step(actions.astype(np.int32, copy=False))

    def close(self) -> None:
        self.env.close()


def envpool_missing() -> str | None:
    try:
        import envpool  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any failure to import means no column
        return f"{type(exc).__name__}: {exc}"
    return None


def contenders(n: int, workers: int) -> dict[str, Callable[[], Any] | None]:
    return {
        "rock native": lambda: rock_envs.make_vec(
            CARTPOLE, n, backend="subprocess", num_workers=workers, vectorize="native"
        ),
        "rock native caller": lambda: rock_envs.make_vec(
            CARTPOLE, n, backend="subprocess", num_workers=workers, vectorize="native", caller_worker=True
        ),
        "rock native local": lambda: rock_envs.make_vec(CARTPOLE, n, backend="local", vectorize="native"),
        "gym native": lambda: gymnasium.make_vec(CARTPOLE, n, vectorization_mode="vector_entry_point"),
        "envpool": None if envpool_missing() else (lambda: EnvPoolVec(n, workers)),
    }


def rows(seconds: float, rounds: int) -> list[tuple[int, dict[str, float]]]:
    workers = usable_cores()
    table = []
    for n in SIZES:
        makers = [
            (lambda name=name, make=make, n=n: Contender(name, make, CARTPOLE, n))
            for name, make in contenders(n, workers).items()
            if make is not None
        ]
        alive = time_alternating(makers, seconds, rounds)
        table.append((n, {c.name: c.result.steps_per_s for c in alive}))
    return table


def print_rows(table: list[tuple[int, dict[str, float]]]) -> bool:
    """Print the rows; True when a rock-envs native row is at or above EnvPool at every size."""
    workers = usable_cores()
    print(f"native vector envs: CartPole-v1, {workers} workers (rock native) / {workers} threads (envpool)")
    names = ["rock native", "rock native caller", "rock native local", "gym native", "envpool"]
    header = (
        f"{'envs':>6}"
        + "".join(f"{name + '/s':>21}" for name in names)
        + f"{'best rock':>20}{'x envpool':>11}{'x gym native':>14}"
    )
    print(header)
    print("-" * len(header))
    met = True
    for n, rates in table:
        pool, gym = rates.get("envpool"), rates.get("gym native")
        best = max((name for name in names[:3] if name in rates), key=rates.__getitem__)
        rock = rates[best]
        cells = "".join(f"{rates[name]:>21,.0f}" if name in rates else f"{'n/a':>21}" for name in names)
        x_pool = f"{rock / pool:.2f}" if pool else "-"
        x_gym = f"{rock / gym:.2f}" if gym else "-"
        print(f"{n:>6}{cells}{best:>20}{x_pool:>11}{x_gym:>14}")
        met = met and bool(pool and rock >= pool)
    print(
        "best rock = the fastest rock-envs row (subprocess; worker 0 in the caller; the local backend); "
        "x envpool and x gym native are its ratios"
    )
    missing = envpool_missing()
    if missing:
        print(f"envpool: not installed here ({missing}); `pip install envpool` adds its column")
    verdict = "not measured (no envpool)" if missing else "met" if met else "MISSED"
    print(f"target: rock-envs native >= envpool at {' and '.join(map(str, SIZES))} envs {verdict}")
    return met


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vector_native", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short burst per contender")
    args = parser.parse_args(argv)
    print_rows(rows(0.5 if args.quick else 1.0, 1 if args.quick else 4))


if __name__ == "__main__":
    main()
