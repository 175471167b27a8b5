"""A worker's block of envs as one native vector env (`make_vec(..., vectorize="native")`).

Some envs come with a vector implementation of their own that steps many envs in one numpy call
(Gymnasium's `vector_entry_point`: CartPole-v1's `CartPoleVectorEnv`; or an `EnvSpec`'s own
`vector_entry_point`). `NativeBlock` hosts one for all the envs of its worker and answers `Reset`
and `Step` for the block as a whole, so rock-envs' face, backends, faults and send/recv stay as
they are. What a native vector env cannot do is refused with a message that names the fix:
stepping or resetting part of a block (its envs move together), and calls that reach single envs
(`call`, `get_attr`, `set_attr`, `apply`, `snapshot`). Autoreset is the native env's own (the
vector env checks the mode before it starts). A native block is seeded with the seed of the first
env of its reset.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rock_envs.core.errors import EnvArgumentError
from rock_envs.worker.protocol import Batch, Built, Reset, Step

FIX = "use vectorize='per_env' (one env object per slot) for that"


class NativeBlock:
    """The native vector env of one worker, hosting env ids `env_ids` (in order)."""

    def __init__(self, venv: Any, env_ids: list[int]):
        self.venv, self.env_ids = venv, list(env_ids)
        self._unreported: dict[int, tuple[Any, dict[str, Any]]] = {}  # reset with the block, not yet asked for
        self._started = False

    def built(self) -> Built:
        v = self.venv
        metadata = dict(getattr(v, "metadata", {}) or {})
        return Built(v.single_observation_space, v.single_action_space, metadata, getattr(v, "render_mode", None))

    def _whole(self, what: str, ids: list[int]) -> None:
        if ids != self.env_ids:
            raise EnvArgumentError(
                f"`{what}` of envs {ids[:8]} alone: with vectorize='native' a worker's envs "
                f"{self.env_ids[0]}..{self.env_ids[-1]} are one native vector env and move together; "
                f"{what} all of them at once (send/recv: a batch_size that is a multiple of the envs per "
                f"worker), or {FIX}."
            )

    def reset(self, request: Reset) -> Batch:
        ids = list(request.env_ids)
        if ids != self.env_ids:
            if ids and all(i in self._unreported for i in ids):  # a rebuild asks for its envs in parts
                return self._rows(ids, [self._unreported.pop(i) for i in ids])
            if self._started:
                self._whole("reset", ids)
        # A fresh block asked for part of it (a rebuild) is reset whole; the rest is reported when asked.
        obs, infos = self.venv.reset(seed=request.seeds[0], options=request.options[0])
        self._started = True
        rows = list(zip(list(obs), _split_infos(infos, len(self.env_ids))))
        self._unreported = {i: row for i, row in zip(self.env_ids, rows) if i not in ids}
        if ids == self.env_ids:
            n = len(ids)
            return Batch(ids, obs, [0.0] * n, [False] * n, [False] * n, [info for _, info in rows])
        return self._rows(ids, [rows[self.env_ids.index(i)] for i in ids])

    def _rows(self, ids: list[int], rows: list[tuple[Any, dict[str, Any]]]) -> Batch:
        n = len(ids)
        obs = np.stack([o for o, _ in rows])
        return Batch(ids, obs, [0.0] * n, [False] * n, [False] * n, [info for _, info in rows])

    def step(self, request: Step) -> Batch:
        ids = list(request.env_ids)
        self._whole("send" if request.flush_after is not None else "step", ids)
        obs, rewards, terms, truncs, infos = self.venv.step(np.asarray(request.actions))
        # Arrays, not lists: a block is large, and an array of many floats pickles faster than a list.
        return Batch(ids, obs, rewards, terms, truncs, _split_infos(infos, len(ids)))

    def refuse(self, what: str) -> EnvArgumentError:
        return EnvArgumentError(
            f"`{what}`: with vectorize='native' the envs are one native vector env per worker "
            f"({type(self.venv).__name__}), with no env object per slot to reach; {FIX}."
        )

    def close(self) -> None:
        self.venv.close()


def _split_infos(infos: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Gymnasium's vector infos (arrays with `_key` masks) as one dict per env. No infos (CartPole's):
    one empty dict, n times (nothing writes to an env's info dict; it pickles as one)."""
    if not infos:
        return [{}] * n
    per_env: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, values in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}")
        if isinstance(values, dict):
            for k, info in enumerate(_split_infos(values, n)):
                if info and (mask is None or mask[k]):
                    per_env[k][key] = info
            continue
        for k in range(n):
            if mask is None or mask[k]:
                per_env[k][key] = values[k]
    return per_env


__all__ = ["NativeBlock"]
