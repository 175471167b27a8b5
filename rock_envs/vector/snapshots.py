"""Snapshots of a vector env's envs: `snapshot`, `restore` and `fork` (a mixin of `RockVectorEnv`).

Each is one `Snapshot` or `Restore` request per worker (`rock_envs.worker.protocol`), so every
backend has them. A fork is a snapshot of one env restored into others, inside its worker or across
workers; the one snapshot is pickled once per worker, however many envs it goes into. With
`restore="snapshot"` the dispatcher keeps each env's last snapshot (taken or restored) and rebuilds
the envs of a worker that died at that state instead of resetting them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from rock_envs.core.errors import EnvArgumentError
from rock_envs.core.snapshot import EnvSnapshot, check_fits
from rock_envs.worker.protocol import Restore, Snapshot

if TYPE_CHECKING:
    from rock_envs.vector.assembly import Assembler
    from rock_envs.vector.dispatcher import Dispatcher
    from rock_envs.vector.recording import Recorder


class SnapshotOps:
    """What `RockVectorEnv` adds for env state. Uses the vector env's own `_on_envs` and `_check_ids`."""

    num_envs: int
    _d: Dispatcher
    _assembler: Assembler
    _identity: Callable[[int], tuple[str | None, dict[str, Any] | None]]
    _on_envs: Callable[..., tuple[Any, ...]]
    _check_ids: Callable[[str, Any], list[int]]
    _check_open: Callable[[str], None]
    _recorder: Recorder | None

    def snapshot(self, env_ids: Sequence[int] | None = None) -> list[EnvSnapshot]:
        """One `EnvSnapshot` per env of `env_ids` (default: every env), in that order.

        Raises `SnapshotError` (as a `RemoteError` from the worker) for an env that can be neither
        pickled nor replayed; the message names it and says why."""
        ids = self._check_ids("snapshot", env_ids)
        snapshots = list(self._on_envs("snapshot", ids, lambda part: Snapshot(part)))
        self._d.keep(ids, snapshots)
        return snapshots

    def restore(self, snapshots: Sequence[EnvSnapshot], env_ids: Sequence[int] | None = None) -> None:
        """Put env `env_ids[k]` (default: env k) in the state of `snapshots[k]`.

        Every snapshot is checked first (`SnapshotError`: another env id or kwargs, corrupted or
        truncated); a bad one changes no env. The restored envs continue exactly as the envs the
        snapshots were taken from would have: same observations, rewards and random draws."""
        self._check_open("restore")
        if isinstance(snapshots, EnvSnapshot):
            snapshots = [snapshots]
        snapshots = list(snapshots)
        ids = self._check_ids("restore", env_ids if env_ids is not None else range(len(snapshots)))
        if len(snapshots) != len(ids):
            raise EnvArgumentError(
                f"`restore`: got {len(snapshots)} snapshots for {len(ids)} env ids; give one snapshot per env id."
            )
        for i, snap in zip(ids, snapshots):
            env_id, kwargs = self._identity(i)
            check_fits(snap, env_id, kwargs, f"env {i} of this vector env ({env_id or 'from a callable'})", "restore")
        self._restore(ids, snapshots)

    def fork(self, src_env_id: int, dst_env_ids: Sequence[int]) -> None:
        """Copy env `src_env_id`'s state into every env of `dst_env_ids` (same worker or not):
        afterwards they all continue as `src_env_id` would (set up once, fork N)."""
        n = self.num_envs
        if isinstance(src_env_id, bool) or not isinstance(src_env_id, int) or not 0 <= src_env_id < n:
            raise EnvArgumentError(f"`fork`: src_env_id must be an env id in 0..{n - 1}, got {src_env_id!r}.")
        try:
            dst = self._check_ids("fork", dst_env_ids)
        except EnvArgumentError:
            raise EnvArgumentError(
                f"`fork`: dst_env_ids must be distinct env ids in 0..{n - 1}, got {list(dst_env_ids)[:16]}."
            ) from None
        if not dst:
            return
        (snap,) = self.snapshot([src_env_id])
        self._restore(dst, [snap] * len(dst))
        for i in dst:
            self._d.seeds[i] = self._d.seeds[src_env_id]
        if self._recorder is not None:  # their records go on from a copy of the source's
            self._recorder.copied(src_env_id, dst)

    def _restore(self, ids: list[int], snapshots: list[EnvSnapshot]) -> None:
        snapshot_of = dict(zip(ids, snapshots))
        obs = self._on_envs("restore", ids, lambda part: Restore(part, [snapshot_of[i] for i in part]))
        known = [(i, o) for i, o in zip(ids, obs) if o is not None]
        if known:  # a masked reset answers with these for the envs it does not reset
            self._assembler.remember([i for i, _ in known], [o for _, o in known])
        self._d.keep(ids, snapshots)
        if self._recorder is not None:
            self._recorder.interrupted(ids, "restored")
