"""Vector steps/s on the ray backend versus the subprocess backend, side by side in one run.

    python -m benchmarks.ray [--rounds 3] [--steps 20] [--num-workers N] [--only ENV_ID]

Both backends get the same number of workers (default: the usable cores) hosting the same envs;
each round steps every env `--steps` times with the same actions, alternating which backend goes
first; the table shows each side's best round (noise on a shared machine only slows a round down).
Ray runs on a local cluster started once (its start-up is printed apart); "start-up" is the time
`make_vec` takes to start the workers and build the envs. "CPU µs/step" is the CPU time one vector
step costs in the best round, in the caller and in all workers together (read from /proc through
psutil). Target: ray/subprocess >= 0.5 on one machine.
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


def worker_pids(venv) -> list[int]:
    group = venv.group
    if group.name == "ray":
        return [group.describe(w)["pid"] for w in range(group.num_workers)]
    return [group.pid(w) for w in range(group.num_workers)]


def cpu_seconds(pids: list[int]) -> float:
    import psutil

    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


def timed_round(venv, actions: list, pids: list[int]) -> tuple[float, float, float]:
    """Env steps/s, and the caller's and the workers' CPU µs per vector step."""
    venv.reset(seed=0)
    workers_before, caller_before = cpu_seconds(pids), time.process_time()
    started = time.perf_counter()
    for batch in actions:
        venv.step(batch)
    elapsed = time.perf_counter() - started
    caller, workers = time.process_time() - caller_before, cpu_seconds(pids) - workers_before
    return len(actions) * venv.num_envs / elapsed, caller / len(actions) * 1e6, workers / len(actions) * 1e6


def timed_make(env_id: str, num_envs: int, backend: str, num_workers: int):
    started = time.perf_counter()
    venv = rock_envs.make_vec(env_id, num_envs, backend=backend, num_workers=num_workers)
    return venv, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="vector steps per round (CartPole: 25 times more)")
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--only", default=None, help="run only the rows of this env id, e.g. CartPole-v1")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    import ray

    workers = args.num_workers or usable_cores()
    started = time.perf_counter()
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",  # the cluster, and the actors' data channels, on loopback only
        num_cpus=max(workers, usable_cores()),
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    cluster_start = time.perf_counter() - started

    # (env, envs, vector steps per round): CartPole's steps are cheap, so it takes more of them, for
    # a round long enough to time and for the CPU clock ticks (10 ms) to count
    cases = [("game:Sokoban-v0-easy", 512, args.steps), ("game:Sokoban-v0-easy", 4096, args.steps)]
    cases.append(("CartPole-v1", 64, args.steps * 25))
    cases = [case for case in cases if args.only in (None, case[0])]
    header = (
        f"{'env':<22}{'envs':>6}{'workers':>8}{'subprocess steps/s':>20}{'ray steps/s':>13}"
        f"{'ratio':>7}{'CPU µs/step sub: caller+workers':>33}{'ray: caller+workers':>21}"
        f"{'start-up subprocess':>21}{'start-up ray':>14}"
    )
    rows = []
    for env_id, num_envs, steps in cases:
        actions = actions_for(env_id, num_envs, steps)
        sub, sub_start = timed_make(env_id, num_envs, "subprocess", workers)
        on_ray, ray_start = timed_make(env_id, num_envs, "ray", workers)
        rounds: dict[str, list[tuple[float, float, float]]] = {"subprocess": [], "ray": []}
        try:
            pids = {"subprocess": worker_pids(sub), "ray": worker_pids(on_ray)}
            for r in range(args.rounds):
                order = [("subprocess", sub), ("ray", on_ray)]
                for name, venv in order if r % 2 == 0 else order[::-1]:
                    rounds[name].append(timed_round(venv, actions, pids[name]))
        finally:
            sub.close()
            on_ray.close()
        best_sub, best_ray = max(rounds["subprocess"]), max(rounds["ray"])
        ratio = best_ray[0] / best_sub[0]
        cpu_sub = f"{best_sub[1]:,.0f}+{best_sub[2]:,.0f}"
        cpu_ray = f"{best_ray[1]:,.0f}+{best_ray[2]:,.0f}"
        rows.append(
            f"{env_id:<22}{num_envs:>6}{workers:>8}{best_sub[0]:>20,.0f}{best_ray[0]:>13,.0f}{ratio:>7.2f}"
            f"{cpu_sub:>33}{cpu_ray:>21}{sub_start:>20.2f}s{ray_start:>13.2f}s  "
            f"{'ok' if ratio >= TARGET else 'MISSED'}"
        )
    ray.shutdown()
    print(
        f"ray backend vs subprocess, best of {args.rounds} rounds of {args.steps} vector steps "
        f"({args.steps * 25} for CartPole); "
        f"target ratio >= {TARGET}; local Ray cluster start-up {cluster_start:.2f}s"
    )
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
