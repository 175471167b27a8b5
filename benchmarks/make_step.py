"""In-process steps/s through `rock_envs.make` versus the raw env, side by side in one run.

    python -m benchmarks.make_step [--steps N] [--rounds R]

Each round times the raw env and the rock-envs env over the same number of steps (random valid
actions, resets included), alternating which goes first. The table shows each side's best round,
as `timeit` does: on a shared machine, noise only ever slows a round down. Target ratio >= 0.95.
"""

from __future__ import annotations

import argparse
import logging
import random
import time

import gymnasium

import rock_envs

MOVES = ["\\boxed{up}", "\\boxed{down}", "\\boxed{left}", "\\boxed{right}"]


def steps_per_second(env, steps: int, actions: list) -> float:
    env.reset(seed=0)
    episode = 0
    started = time.perf_counter()
    for t in range(steps):
        _, _, terminated, truncated, _ = env.step(actions[t % len(actions)])
        if terminated or truncated:
            episode += 1
            env.reset(seed=episode)
    return steps / (time.perf_counter() - started)


def raw_env(env_id: str):
    if ":" in env_id:
        import gem

        return gem.make(env_id)
    return gymnasium.make(env_id)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=None, help="steps per timing (default: per env)")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    rng = random.Random(0)
    cases = [
        ("game:Sokoban-v0-easy", [rng.choice(MOVES) for _ in range(1000)], 1500),
        ("CartPole-v1", [rng.randrange(2) for _ in range(1000)], 30_000),
    ]
    print(f"{'env':<24}{'raw steps/s':>14}{'rock-envs steps/s':>20}{'ratio':>8}{'target':>9}")
    for env_id, actions, default_steps in cases:
        steps = args.steps or default_steps
        raw, rock = raw_env(env_id), rock_envs.make(env_id)
        raw_rates, rock_rates = [], []
        for r in range(args.rounds):
            order = [(raw, raw_rates), (rock, rock_rates)]
            for env, rates in order if r % 2 == 0 else order[::-1]:
                rates.append(steps_per_second(env, steps, actions))
        raw_best, rock_best = max(raw_rates), max(rock_rates)
        ratio = rock_best / raw_best
        print(
            f"{env_id:<24}{raw_best:>14,.0f}{rock_best:>20,.0f}{ratio:>8.3f}{'>= 0.95':>9}"
            f"  {'ok' if ratio >= 0.95 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
