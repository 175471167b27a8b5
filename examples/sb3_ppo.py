"""Stable-Baselines3 PPO on CartPole-v1, its envs stepped by rock-envs workers.

    python examples/sb3_ppo.py [--timesteps 4096] [--num-envs 8] [--backend subprocess]

`RockVecEnv` is an SB3 `VecEnv`; `VecMonitor` records episode returns around it, as usual in SB3.
"""

from __future__ import annotations

import argparse

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

from rock_envs.integrations.sb3 import RockVecEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=4096)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--backend", default="subprocess")
    parser.add_argument("--num-workers", type=int, default=2)
    args = parser.parse_args()

    venv = VecMonitor(
        RockVecEnv("CartPole-v1", num_envs=args.num_envs, backend=args.backend, num_workers=args.num_workers)
    )
    venv.seed(0)
    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=256, n_epochs=4, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=args.timesteps)
    returns = [episode["r"] for episode in model.ep_info_buffer]
    print(f"trained {model.num_timesteps} steps on {venv.unwrapped.venv!r}")
    print(f"{len(returns)} episodes recorded, mean return of the last 20: {np.mean(returns[-20:]):.1f}")
    venv.close()


if __name__ == "__main__":
    main()
