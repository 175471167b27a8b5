"""Set up once, fork N: GRPO-style groups that all start from the same state, then trace one back.

    python examples/fork_groups.py [--groups 4] [--size 8] [--steps 12]

GuessTheNumber: each group's first env is reset with its own seed (its own secret number) and makes
one guess (the shared prefix); `fork` copies it into the rest of its group, inside its worker or
across workers. The members then guess on their own from that one state (each its own random
guesses: a fork copies the RNG too, so they are told apart by their own actions), and their returns
are compared within the group. Every episode is recorded; the best is brought back at its last step
with `rock_envs.replay`.
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile

import rock_envs
from rock_envs.trajectories import episodes_in

ENV = "game:GuessTheNumber-v0-easy"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    n = args.groups * args.size
    records = tempfile.mkdtemp(prefix="rock-envs-records-")
    rng = random.Random(0)
    with rock_envs.make_vec(
        ENV, n, backend="subprocess", num_workers=2, autoreset_mode="disabled", record=records
    ) as venv:
        obs, _ = venv.reset(seed=list(range(n)))
        low, high = (int(x) for x in re.findall(r"between (\d+) and (\d+)", obs[0])[0])
        venv.step([f"\\boxed{{{(low + high) // 2}}}"] * n)  # a prefix (one guess): what the group will share
        for g in range(args.groups):
            leader = g * args.size
            venv.fork(leader, range(leader + 1, leader + args.size))  # the group: copies of its leader
        returns = [0.0] * n
        done = [False] * n
        for _ in range(args.steps):
            guesses = [f"\\boxed{{{rng.randint(low, high)}}}" for _ in range(n)]
            obs, rewards, terms, truncs, _ = venv.step(guesses)
            for i in range(n):
                if not done[i]:
                    returns[i] += float(rewards[i])
                    done[i] = bool(terms[i] or truncs[i])
        for g in range(args.groups):
            group = returns[g * args.size : (g + 1) * args.size]
            mean = sum(group) / len(group)
            print(
                f"group {g}: returns {[round(r, 2) for r in group]}, advantages {[round(r - mean, 2) for r in group]}"
            )
    # a forked env's record starts with its leader's prefix: any of them replays on its own
    episodes = [e for e in episodes_in(records) if e.end and e.end["reason"] != "restored"]
    best = max(episodes, key=lambda e: sum(step["reward"] for step in e.steps))
    with rock_envs.replay(best, until_step=len(best.steps)) as env:  # that episode's last state, back again
        print(f"best episode: env {best.header['index']} (seed {best.header['seed']}), {len(best.steps)} steps;")
        print(f"its guesses again: {env.unwrapped.previous_guesses}")


if __name__ == "__main__":
    main()
