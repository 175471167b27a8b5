"""`rock_envs.make(id, backend=...)` off this process: one env behind a one-env vector env.

The env runs wherever the backend puts it (a worker process, a container, a Ray actor, a sandbox
server) and shows the same single-env face as a local one; autoreset is off, so `reset` is the
caller's, as with any single env.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rock_envs.backends import BackendName
from rock_envs.core.batching import ObsBatcher
from rock_envs.core.env import Env
from rock_envs.core.errors import EnvArgumentError
from rock_envs.core.snapshot import EnvSnapshot
from rock_envs.registry import EnvSpec


def unbatch_info(infos: dict[str, Any], k: int = 0) -> dict[str, Any]:
    """Env `k`'s own info out of Gymnasium's dict-of-arrays layout."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not mask[k]:
            continue
        if isinstance(value, dict):
            out[key] = unbatch_info(value, k)
        else:
            item = value[k]
            out[key] = item.item() if isinstance(item, np.generic) else item
    return out


class RemoteEnv(Env):
    """One env hosted by a backend; `unwrapped` is this object (the real env lives elsewhere)."""

    def __init__(self, spec: EnvSpec, backend: BackendName, **kwargs: Any):
        from rock_envs.vector.make_vec import make_vec

        self.spec = spec
        self.backend = backend
        fixed = sorted({"num_workers", "autoreset_mode", "num_envs"} & set(kwargs))
        if fixed:
            raise EnvArgumentError(
                f"`rock_envs.make(backend={backend!r})`: {fixed} cannot be set for one env (it runs in one "
                "worker and resets when you call reset); for many envs use `rock_envs.make_vec`."
            )
        self.vector_env = make_vec(spec, 1, backend=backend, num_workers=1, autoreset_mode="disabled", **kwargs)
        self.observation_space = self.vector_env.single_observation_space
        self.action_space = self.vector_env.single_action_space
        self.metadata = dict(self.vector_env.metadata)
        self.render_mode = self.vector_env.render_mode
        self._row = ObsBatcher(self.observation_space).row

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)  # this side's `np_random` too, seeded as the env's (Gymnasium's check_env looks)
        obs, infos = self.vector_env.reset(seed=seed, options=options)
        return self._row(obs, 0), unbatch_info(infos)

    def step(self, action: Any):
        obs, rewards, terms, truncs, infos = self.vector_env.step([action])
        return self._row(obs, 0), float(rewards[0]), bool(terms[0]), bool(truncs[0]), unbatch_info(infos)

    def render(self) -> Any:
        return self.vector_env.call("render")[0]

    def snapshot(self) -> EnvSnapshot:
        return self.vector_env.snapshot([0])[0]

    def restore(self, snapshot: EnvSnapshot) -> None:
        self.vector_env.restore([snapshot], [0])

    @property
    def closed(self) -> bool:
        return self.vector_env.closed

    def sample_random_action(self) -> Any:
        return self.vector_env.call("sample_random_action")[0]

    def close(self) -> None:
        self.vector_env.close()

    def __repr__(self) -> str:
        return f"<RemoteEnv {getattr(self.spec, 'id', '?')!r} on {self.backend}>"


def make_single(spec: EnvSpec, backend: BackendName, **kwargs: Any) -> RemoteEnv:
    return RemoteEnv(spec, backend, **kwargs)
