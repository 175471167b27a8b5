"""A ROLL-style rollout: env groups stepped concurrently, seeds per group and episode, JSONL out.

    python examples/roll_rollout.py [--groups 4] [--group-size 4] [--episodes 2] [--out rollouts.jsonl]

ROLL's env managers each run a loop over a group of envs (GRPO wants `group_size` envs that start
from the same seed) and ask the inference engine for the next actions. Here each group is one
rock-envs vector env on any backend, driven by its own asyncio task (the blocking step runs in a
thread, so groups overlap). Where rock-envs plugs in:

- `make_group`: `rock_envs.make_vec(env_id, group_size, backend=...)` replaces the env manager's
  list of env instances; `backend="ray"` puts the group's envs on a Ray cluster;
- `generate`: stands in for the policy (vLLM/SGLang behind ROLL's `generate` call); it returns
  one `\\boxed{move}` per env from its seeded RNG;
- each episode of group g starts from seed `base_seed + 1000 * g + episode` for every env in it.

Every finished trajectory is one JSON line: group, episode, env index, seed, the turns (observation,
action, reward) and the return.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from typing import Any

import rock_envs

MOVES = ["up", "down", "left", "right"]


def generate(observations: tuple[str, ...], rng: random.Random) -> list[str]:
    """The policy. A trainer calls its inference engine here with the prompts built from `observations`."""
    return [f"\\boxed{{{rng.choice(MOVES)}}}" for _ in observations]


def make_group(env_id: str, group_size: int, backend: str) -> Any:
    return rock_envs.make_vec(
        env_id, group_size, backend=backend, num_workers=min(2, group_size), autoreset_mode="disabled"
    )


def run_episode(venv: Any, seed: int, rng: random.Random, max_turns: int) -> list[dict[str, Any]]:
    """One episode for every env of the group, all from `seed`; returns one trajectory per env."""
    n = venv.num_envs
    obs, _ = venv.reset(seed=[seed] * n)
    turns: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    done = [False] * n
    for _ in range(max_turns):
        actions = generate(obs, rng)
        next_obs, rewards, terms, truncs, _ = venv.step(actions)
        for i in range(n):
            if not done[i]:
                turns[i].append({"observation": obs[i], "action": actions[i], "reward": float(rewards[i])})
                done[i] = bool(terms[i] or truncs[i])
        obs = next_obs
        if all(done):
            break
    return [
        {
            "env_index": i,
            "seed": seed,
            "turns": turns[i],
            "return": sum(t["reward"] for t in turns[i]),
            "finished": done[i],
        }
        for i in range(n)
    ]


async def run_group(group: int, args: argparse.Namespace, out: asyncio.Queue) -> None:
    """ROLL's env manager loop for one group: its own envs, its own seeds, its own RNG."""
    venv = await asyncio.to_thread(make_group, args.env_id, args.group_size, args.backend)
    rng = random.Random(args.base_seed + group)
    try:
        for episode in range(args.episodes):
            seed = args.base_seed + 1000 * group + episode
            for trajectory in await asyncio.to_thread(run_episode, venv, seed, rng, args.max_turns):
                await out.put({"group": group, "episode": episode, **trajectory})
    finally:
        await asyncio.to_thread(venv.close)


async def main_async(args: argparse.Namespace) -> int:
    queue: asyncio.Queue = asyncio.Queue()
    groups = [asyncio.create_task(run_group(g, args, queue)) for g in range(args.groups)]
    written = 0
    with open(args.out, "w", encoding="utf-8") as f:
        pending = asyncio.gather(*groups)
        while not (pending.done() and queue.empty()):
            try:
                record = await asyncio.wait_for(queue.get(), timeout=0.1)
            except asyncio.TimeoutError:
                continue
            f.write(json.dumps(record) + "\n")
            written += 1
        await pending  # re-raises a group's error
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="game:Sokoban-v0-easy")
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--max-turns", type=int, default=20)
    parser.add_argument("--base-seed", type=int, default=0)
    parser.add_argument("--backend", default="subprocess")
    parser.add_argument("--out", default="rollouts.jsonl")
    args = parser.parse_args()
    written = asyncio.run(main_async(args))
    print(
        f"{written} trajectories from {args.groups} groups x {args.group_size} envs x {args.episodes} episodes "
        f"written to {args.out}"
    )


if __name__ == "__main__":
    main()
