"""Vector steps/s on the ray backend versus the subprocess backend, side by side in one run.

    python -m benchmarks.ray [--rounds 3] [--steps 20] [--num-workers N]

Both backends get the same number of workers (default: the usable cores) hosting the same envs;
each round steps every env `--steps` times with the same actions, alternating which backend goes
first; the table shows each side's best round (noise on a shared machine only slows a round down).
Ray runs on a local cluster started once (its start-up is printed apart); "start-up" is the time
`make_vec` takes to start the workers and build the envs. Target: ray/subprocess >= 0.5 on one machine.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402

import rock_envs  # noqa: E402
from rock_envs.backends import usable_cores  # noqa: E402

MOVES = ["\\boxed{up}", "\\boxed{down}", "\\boxed{left}", "\\boxed{right}"]
TARGET = 0.5


def actions_for(env_id: str, num_envs: int, steps: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    if ":" in env_id:
        return [[rng.choice(MOVES) for _ in range(num_envs)] for _ in range(steps)]
    return [np.array([rng.randrange(2) for _ in range(num_envs)], dtype=np.int64) for _ in range(steps)]


def env_steps_per_second(venv, actions: list) -> float:
    venv.reset(seed=0)
    started = time.perf_counter()
    for batch in actions:
        venv.step(batch)
    return len(actions) * venv.num_envs / (time.perf_counter() - started)


def timed_make(env_id: str, num_envs: int, backend: str, num_workers: int):
    started = time.perf_counter()
    venv = rock_envs.make_vec(env_id, num_envs, backend=backend, num_workers=num_workers)
    return venv, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="vector steps per round")
    parser.add_argument("--num-workers", type=int, default=None)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    import ray

    workers = args.num_workers or usable_cores()
    started = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=max(workers, usable_cores()),
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    cluster_start = time.perf_counter() - started

    cases = [("game:Sokoban-v0-easy", 512), ("game:Sokoban-v0-easy", 4096), ("CartPole-v1", 64)]
    header = (
        f"{'env':<22}{'envs':>6}{'workers':>8}{'subprocess steps/s':>20}{'ray steps/s':>13}"
        f"{'ratio':>7}{'start-up subprocess':>21}{'start-up ray':>14}"
    )
    rows = []
    for env_id, num_envs in cases:
        actions = actions_for(env_id, num_envs, args.steps)
        sub, sub_start = timed_make(env_id, num_envs, "subprocess", workers)
        on_ray, ray_start = timed_make(env_id, num_envs, "ray", workers)
        rates: dict[str, list[float]] = {"subprocess": [], "ray": []}
        try:
            for r in range(args.rounds):
                order = [("subprocess", sub), ("ray", on_ray)]
                for name, venv in order if r % 2 == 0 else order[::-1]:
                    rates[name].append(env_steps_per_second(venv, actions))
        finally:
            sub.close()
            on_ray.close()
        best_sub, best_ray = max(rates["subprocess"]), max(rates["ray"])
        ratio = best_ray / best_sub
        rows.append(
            f"{env_id:<22}{num_envs:>6}{workers:>8}{best_sub:>20,.0f}{best_ray:>13,.0f}{ratio:>7.2f}"
            f"{sub_start:>20.2f}s{ray_start:>13.2f}s  {'ok' if ratio >= TARGET else 'MISSED'}"
        )
    ray.shutdown()
    print(
        f"ray backend vs subprocess, best of {args.rounds} rounds of {args.steps} vector steps; "
        f"target ratio >= {TARGET}; local Ray cluster start-up {cluster_start:.2f}s"
    )
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
