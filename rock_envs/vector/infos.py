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
        if all(isinstance(v, dict) for v in values):
            merged[key] = merge_infos(values, n, [row for row, _ in items])
        else:
            merged[key] = _column(items, n)
        merged[f"_{key}"] = mask
    return merged


def _column(items: list[tuple[int, Any]], n: int) -> np.ndarray:
    first = items[0][1]
    if isinstance(first, (bool, np.bool_)) and all(isinstance(v, (bool, np.bool_)) for _, v in items):
        column = np.zeros(n, dtype=np.bool_)
    elif isinstance(first, (int, np.integer)) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for _, v in items
    ):
        column = np.zeros(n, dtype=np.int64)
    elif isinstance(first, (float, np.floating)) and all(isinstance(v, (int, float, np.number)) for _, v in items):
        column = np.zeros(n, dtype=np.float64)
    else:
        column = np.full(n, None, dtype=object)
        for row, value in items:
            column[row] = value
        return column
    for row, value in items:
        column[row] = value
    return column
