"""Which envs share a worker: one contiguous block of env ids per worker.

By default the envs are split evenly. Where some envs must not share a worker with others (on the
docker backend, envs of different images go to different containers), `keyed_blocks` splits each
run of consecutive envs with one key on its own, so no block holds two keys; the workers go to the
runs by their number of envs.
"""

from __future__ import annotations

from typing import Any, Sequence

from rock_envs.core.errors import EnvArgumentError


def even_blocks(num_envs: int, num_workers: int, start: int = 0) -> list[list[int]]:
    """`num_workers` blocks of `start .. start + num_envs - 1`, sizes differing by one at most."""
    return [
        list(range(start + w * num_envs // num_workers, start + (w + 1) * num_envs // num_workers))
        for w in range(num_workers)
    ]


def runs(keys: Sequence[Any]) -> list[tuple[int, int]]:
    """`(lo, hi)` of every run of consecutive equal keys, in order."""
    out: list[tuple[int, int]] = []
    for i, key in enumerate(keys):
        if out and keys[out[-1][0]] == key:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def keyed_blocks(
    keys: Sequence[Any], num_workers: int | None, default_workers: int, envs_per_worker: int | None = None
) -> list[list[int]]:
    """Blocks that never mix two keys. `num_workers`: the caller's (None: `default_workers`, raised
    to one per run); `envs_per_worker`: at most that many envs per block instead."""
    spans = runs(keys)
    sizes = [hi - lo for lo, hi in spans]
    if envs_per_worker is not None:
        shares = [-(-size // envs_per_worker) for size in sizes]
    else:
        total = max(default_workers, len(spans)) if num_workers is None else num_workers
        if total < len(spans):
            raise EnvArgumentError(
                f"`make_vec`: these envs need at least {len(spans)} workers, one per run of envs that "
                f"cannot share one (e.g. of another image), got num_workers={num_workers}; pass "
                f"num_workers>={len(spans)}, or order the envs so that those of one image come together."
            )
        shares = [1] * len(spans)
        for _ in range(total - len(spans)):  # each next worker to the run with the most envs per worker
            r = max((r for r in range(len(spans)) if shares[r] < sizes[r]), key=lambda r: sizes[r] / shares[r])
            shares[r] += 1
    return [block for (lo, hi), share in zip(spans, shares) for block in even_blocks(hi - lo, share, lo)]


__all__ = ["even_blocks", "keyed_blocks", "runs"]
