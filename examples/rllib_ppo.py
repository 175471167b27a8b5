"""RLlib PPO (new API stack) on CartPole-v1, sampling through rock-envs vector envs.

    python examples/rllib_ppo.py [--iterations 2] [--env-runners 1] [--envs-per-runner 4]

Each RLlib env runner (a Ray actor) steps one rock-envs vector env whose envs live in rock-envs
worker processes next to it (`--backend subprocess`) or in Ray actors (`--backend ray`).
"""

from __future__ import annotations

import argparse
import math
import os

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402
from ray.rllib.algorithms.ppo import PPOConfig  # noqa: E402

from rock_envs.integrations.rllib import register_env  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--env-runners", type=int, default=1)
    parser.add_argument("--envs-per-runner", type=int, default=4)
    parser.add_argument("--backend", default="subprocess")
    parser.add_argument("--num-cpus", type=int, default=4, help="logical CPUs of the local Ray cluster")
    parser.add_argument(
        "--address", default=None, help="a running Ray cluster ('auto' or host:port); default: start one"
    )
    args = parser.parse_args()

    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    backend_options = {"worker_resources": {"num_cpus": 0.5}} if args.backend == "ray" else {}
    env_name = register_env("CartPole-v1", backend=args.backend, num_workers=2, **backend_options)
    config = (
        PPOConfig()
        .environment(env=env_name)
        .env_runners(
            num_env_runners=args.env_runners,
            num_envs_per_env_runner=args.envs_per_runner,
            gym_env_vectorize_mode="vector_entry_point",
            num_cpus_per_env_runner=1,
        )
        .training(train_batch_size_per_learner=512, minibatch_size=128, num_epochs=2, lr=3e-4)
        .debugging(seed=0)
    )
    algo = config.build_algo()
    for i in range(args.iterations):
        result = algo.train()
        runners = result["env_runners"]
        ret = runners.get("episode_return_mean", math.nan)
        print(
            f"iteration {i + 1}: env steps {runners['num_env_steps_sampled_lifetime']}, "
            f"episodes {runners.get('num_episodes_lifetime', 0)}, episode_return_mean {ret:.1f}"
        )
    envs = algo.env_runner_group.foreach_env_runner(lambda runner: repr(runner.env.unwrapped), local_env_runner=False)
    print("sampled through:", envs)
    algo.stop()
    ray.shutdown()


if __name__ == "__main__":
    main()
