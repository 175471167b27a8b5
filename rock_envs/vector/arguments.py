"""The vector env's checks of env ids, seeds and reset masks: what each call was given, as env ids."""

from __future__ import annotations

from typing import Any

import numpy as np

from rock_envs.core.errors import EnvArgumentError


def reset_ids(options: Any, num_envs: int) -> list[int]:
    """The envs a `reset(options=...)` resets: those of `options["reset_mask"]`, else every env."""
    mask = options.get("reset_mask") if isinstance(options, dict) else None
    if mask is None:
        return list(range(num_envs))
    mask = np.asarray(mask)
    fix = f"pass a bool array with one entry per env (True: reset it), shape ({num_envs},)"
    if mask.dtype != np.bool_:
        raise EnvArgumentError(f"`reset`: `options['reset_mask']` must have `dtype=np.bool_`, got {mask.dtype}; {fix}.")
    if mask.shape != (num_envs,):
        raise EnvArgumentError(
            f"`reset`: `options['reset_mask']` must have shape `({num_envs},)`, got {mask.shape}; {fix}."
        )
    if not mask.any():
        raise EnvArgumentError(
            "`reset`: `options['reset_mask']` must contain a boolean array with at least one True value, "
            f"got reset_mask={mask}; {fix}."
        )
    return [int(i) for i in np.flatnonzero(mask)]


def seeds_for(ids: list[int], seed: Any, num_envs: int) -> list[int | None]:
    """Each of `ids`'s seed: an int seeds env i with seed + i; a list gives one per env."""
    if seed is None:
        return [None] * len(ids)
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in ids]
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise EnvArgumentError(f"`reset`: expected an int or {num_envs} seeds, got {len(seeds)} seeds.")
    return [seeds[i] for i in ids]


def check_ids(call: str, env_ids: Any, num_envs: int) -> list[int]:
    """`env_ids` as a list of distinct env ids (None: every env), or an error naming `call`."""
    if env_ids is None:
        return list(range(num_envs))
    ids = [int(i) for i in np.asarray(env_ids).reshape(-1)]
    bad = [i for i in ids if not 0 <= i < num_envs]
    if bad or len(set(ids)) != len(ids):
        raise EnvArgumentError(
            f"`{call}`: env_ids must be distinct ints in 0..{num_envs - 1}, got {list(env_ids)[:16]}."
        )
    return ids
