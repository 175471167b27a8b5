"""A loop written for GEM, run on rock-envs: swap `gem.make` for `rock_envs.make`, keep the rest.

    python examples/gem_loop.py [--episodes 3] [--backend local]

Part 1 is GEM's plain loop with `rock_envs.make` in place of `gem.make` (same ids, same
`reset(seed=...)`/`step(action)`/`sample_random_action()`), on any backend. Part 2 puts GEM's own
wrappers (`concat_with_action`, `episode_tracking`) on a rock-envs env.
"""

from __future__ import annotations

import argparse

import rock_envs
import rock_envs.integrations.gem as rgem

make = rock_envs.make  # was: `from gem import make`


def play(env, episodes: int, seed: int) -> list[float]:
    """GEM's loop: random moves until the episode ends."""
    returns = []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            action = env.sample_random_action()
            obs, reward, terminated, truncated, info = env.step(action)
            total += reward
            done = terminated or truncated
        returns.append(total)
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="game:Sokoban-v0-easy")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--backend", default="local")
    args = parser.parse_args()

    env = make(args.env_id, backend=args.backend)
    print(f"part 1, {args.env_id} on {args.backend}: returns {play(env, args.episodes, seed=0)}")
    env.close()

    wrapped = rgem.make(args.env_id, backend=args.backend, wrappers="concat_with_action,episode_tracking")
    obs, info = wrapped.reset(7)
    for _ in range(3):
        obs, reward, terminated, truncated, info = wrapped.step(wrapped.unwrapped.sample_random_action())
        if terminated or truncated:
            break
    print(
        f"part 2, GEM wrappers {type(wrapped).__name__}: step_counter {info['step_counter']}, "
        f"cumulative_rewards {info['cumulative_rewards']}, observation of {len(obs)} chars with the history"
    )
    wrapped.close()


if __name__ == "__main__":
    main()
