"""RLlib (new API stack): env runners that sample through a rock-envs vector env.

    from rock_envs.integrations.rllib import register_env

    name = register_env("CartPole-v1", backend="subprocess", num_workers=2)   # -> "rock/CartPole-v1"
    config = (PPOConfig()
              .environment(env=name)
              .env_runners(num_env_runners=2, num_envs_per_env_runner=64,
                           gym_env_vectorize_mode="vector_entry_point"))

`register_env` puts a `RockEnvCreator` in RLlib's env registry (Tune's, shared by the cluster);
RLlib registers it with Gymnasium as both `entry_point` (one env) and
`vector_entry_point` (called with `num_envs`); with `gym_env_vectorize_mode="vector_entry_point"`
each env runner gets one rock-envs vector env of `num_envs_per_env_runner` envs, stepped by the
backend's workers (processes next to the env runner, or Ray actors anywhere in the cluster). The
vector env's autoreset mode is `next_step`, the one RLlib's `SingleAgentEnvRunner` expects.

`env_config` entries from `config.environment(env_config=...)` go to the env as kwargs; the
creator's own keywords go to `rock_envs.make_vec`.
"""

from __future__ import annotations

from typing import Any

import rock_envs
from rock_envs.backends import BackendName

_RLLIB_CONTEXT_KEYS = ("num_envs", "worker_index", "num_workers", "vector_index", "remote", "recreated_worker")


class RockEnvCreator:
    """A picklable env creator: `creator(env_context)` -> one env, or a vector env when `num_envs` is in it."""

    def __init__(self, env_id: str, backend: BackendName = "subprocess", **make_vec_kwargs: Any):
        self.env_id = env_id
        self.backend = backend
        self.make_vec_kwargs = make_vec_kwargs

    def __call__(self, env_context: Any = None) -> Any:
        context = dict(env_context or {})
        num_envs = context.get("num_envs")
        env_kwargs = {k: v for k, v in context.items() if k not in _RLLIB_CONTEXT_KEYS}
        if num_envs is None:  # RLlib asks for one env (to read its spaces, say): build it here
            return rock_envs.make(self.env_id, **env_kwargs)
        options = dict(self.make_vec_kwargs)
        options.setdefault("num_workers", min(int(num_envs), options.get("num_workers") or int(num_envs)))
        return rock_envs.make_vec(
            self.env_id,
            int(num_envs),
            backend=self.backend,
            autoreset_mode="next_step",
            env_kwargs=env_kwargs,
            **options,
        )

    def __repr__(self) -> str:
        return f"RockEnvCreator({self.env_id!r}, backend={self.backend!r})"


def register_env(
    env_id: str, backend: BackendName = "subprocess", *, name: str | None = None, **make_vec_kwargs: Any
) -> str:
    """Register `env_id` on `backend` in RLlib's env registry; returns the name to pass to `config.environment`.

    The default name is `rock/<env_id>`, or `rock/<env_id>@<backend>` for a backend other than subprocess.
    """
    from ray.tune.registry import register_env as tune_register_env

    if name is None:
        name = f"rock/{env_id}" + ("" if backend == "subprocess" else f"@{backend}")
    tune_register_env(name, RockEnvCreator(env_id, backend, **make_vec_kwargs))
    return name


__all__ = ["RockEnvCreator", "register_env"]
