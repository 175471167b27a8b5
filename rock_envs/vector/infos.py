"""Gymnasium's vector info layout: per key, an array over envs plus a boolean `_key` mask."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def merge_infos(
    infos: Sequence[dict[str, Any]], num_envs: int | None = None, positions: Sequence[int] | None = None
) -> dict[str, Any]:
    """Merge per-env info dicts into one dict of arrays (nested dicts merge recursively).

    `infos[k]` belongs to row `positions[k]` (default: row k) of arrays of length `num_envs`.
    """
    n = len(infos) if num_envs is None else num_envs
    rows = range(len(infos)) if positions is None else positions
    keys: dict[str, list[tuple[int, Any]]] = {}
    for row, info in zip(rows, infos):
        for key, value in info.items():
            keys.setdefault(key, []).append((row, value))
    merged: dict[str, Any] = {}
    for key, items in keys.items():
        mask = np.zeros(n, dtype=np.bool_)
        mask[[row for row, _ in items]] = True
        values = [v for _, v in items]
        if key != "final_obs" and all(isinstance(v, dict) for v in values):
            merged[key] = merge_infos(values, n, [row for row, _ in items])
        else:
            merged[key] = _column(key, items, n)
        merged[f"_{key}"] = mask
    return merged


def _column(key: str, items: list[tuple[int, Any]], n: int) -> np.ndarray:
    """One key's values as Gymnasium's `VectorEnv._add_info` lays them out: the first value's type
    decides (a Python or numpy number: an array of that dtype; an array: `(n, *shape)` of its dtype;
    anything else, and always `final_obs`: an object array with None for the envs without it)."""
    first = items[0][1]
    rows = [row for row, _ in items]
    if key == "final_obs":
        column = np.full(n, None, dtype=object)
    elif type(first) in (int, float, bool) or isinstance(first, np.number):
        column = np.zeros(n, dtype=type(first))
        column[rows] = [value for _, value in items]
        return column
    elif isinstance(first, np.ndarray):
        column = np.zeros((n, *first.shape), dtype=first.dtype)
    else:
        column = np.full(n, None, dtype=object)
    for row, value in items:
        column[row] = value
    return column
