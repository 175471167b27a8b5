"""Stable-Baselines3: a `VecEnv` whose envs are a rock-envs vector env, on any backend.

    from stable_baselines3 import PPO
    from rock_envs.integrations.sb3 import RockVecEnv

    venv = RockVecEnv("CartPole-v1", num_envs=8, backend="subprocess")
    PPO("MlpPolicy", venv).learn(10_000)

SB3 resets a finished env inside the same step and keeps its last observation in
`info["terminal_observation"]`: the adapter runs the rock-envs vector env in `same_step` autoreset
mode and moves `final_obs` there; `info["TimeLimit.truncated"]` is set as SB3 expects. Seeds set with
`venv.seed(s)` give env i the seed `s + i`, as in SB3's own vector envs.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

import rock_envs
from rock_envs.backends import BackendName
from rock_envs.vector.single import unbatch_info


class RockVecEnv(VecEnv):
    """`num_envs` envs of `env_id` on `backend`; other keywords go to `rock_envs.make_vec`.

    Pass `vector_env=` to wrap a rock-envs vector env made elsewhere (its autoreset mode must be
    `same_step`).
    """

    def __init__(
        self,
        env_id: Any = None,
        num_envs: int = 1,
        backend: BackendName = "subprocess",
        *,
        vector_env: Any = None,
        **make_vec_kwargs: Any,
    ):
        if vector_env is None:
            vector_env = rock_envs.make_vec(
                env_id, num_envs, backend=backend, autoreset_mode="same_step", **make_vec_kwargs
            )
        elif vector_env.autoreset_mode.name != "SAME_STEP":
            raise rock_envs.EnvArgumentError(
                f"`RockVecEnv(vector_env=...)`: SB3 needs autoreset_mode='same_step', got "
                f"{vector_env.autoreset_mode.name.lower()!r}; make it with `make_vec(..., autoreset_mode='same_step')`."
            )
        self.venv = vector_env
        super().__init__(vector_env.num_envs, vector_env.single_observation_space, vector_env.single_action_space)
        self._actions: Any = None

    # ---- stepping ----------------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = list(self._options) if any(self._options) else None  # one per env, as SB3 keeps them
        obs, infos = self.venv.reset(seed=seeds, options=options)
        self.reset_infos = [unbatch_info(infos, k) for k in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        # SB3's own VecEnvs zip actions with envs, so extra actions are ignored there too
        self.venv.step_async(actions[: self.num_envs] if len(actions) > self.num_envs else actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terms, truncs, infos = self.venv.step_wait()
        dones = terms | truncs
        out: list[dict[str, Any]] = []
        for k in range(self.num_envs):
            info = unbatch_info(infos, k)
            if dones[k]:
                final_info = info.pop("final_info", None) or {}
                final_obs = info.pop("final_obs", None)
                self.reset_infos[k] = info  # what is left is the new episode's reset info
                info = {**final_info, "terminal_observation": final_obs}
            info["TimeLimit.truncated"] = bool(truncs[k] and not terms[k])
            out.append(info)
        return obs, rewards.astype(np.float32), dones, out

    def close(self) -> None:
        self.venv.close()

    # ---- attributes and methods of the envs --------------------------------------------------

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return list(self.venv.get_attr(attr_name, env_ids=self._get_indices(indices)))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        ids = self._get_indices(indices)
        self.venv.set_attr(attr_name, [value] * len(ids), env_ids=ids)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        return list(self.venv.call_envs(self._get_indices(indices), method_name, *method_args, **method_kwargs))

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """Whether each env its factory made is wrapped in `wrapper_class` (checked in the env's worker)."""
        return list(self.venv.apply(lambda env: is_wrapped(env, wrapper_class), self._get_indices(indices)))

    @property
    def envs(self) -> list[Any]:
        """The env objects, as `DummyVecEnv.envs` gives them (local backend only; see `RockVectorEnv.envs`)."""
        return self.venv.envs

    def get_images(self) -> Sequence[np.ndarray | None]:
        return list(self.venv.call("render"))

    def _get_indices(self, indices: VecEnvIndices) -> list[int]:
        """As a list, with negative indices counted from the end (SB3's VecEnvs index a list of envs)."""
        return [i + self.num_envs if i < 0 else i for i in super()._get_indices(indices)]


__all__ = ["RockVecEnv"]
