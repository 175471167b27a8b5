"""`make_vec`'s progress while workers build their envs (see `rock_envs.core.progress`)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rock_envs.core.progress import progress

MIN_ENVS = 256  # a bar for builds at least this big ...
MIN_WORKERS = 8  # ... or on at least this many workers; smaller ones are over before a bar helps


@contextmanager
def build_progress(name: str, num_envs: int, pendings: list[Any]) -> Iterator[Callable[[], None] | None]:
    """A callback for the dispatcher's waits that counts the envs of the `Make` requests answered."""
    if num_envs < MIN_ENVS and len(pendings) < MIN_WORKERS:
        yield None
        return
    with progress(f"make_vec {name}: envs built", num_envs, f"on {len(pendings)} workers") as bar:
        yield lambda: bar.update(sum(len(p.request.env_ids) for p in pendings if p.done))
