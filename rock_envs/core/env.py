"""The one face every rock-envs env shows: Gymnasium's `reset/step`, plus GEM's `sample_random_action`.

Contract (holds for every backend):

- `reset(seed=None, options=None) -> (obs, info)`. Must come before the first `step`. With a seed,
  the env's own random state is seeded: the same seed and the same actions give the same trajectory.
- `step(action) -> (obs, reward, terminated, truncated, info)`. After `terminated or truncated` the
  caller resets.
- `close()` frees what the env holds and is safe to call twice; the env is also a context manager.
- `sample_random_action()` returns an action valid for the current state (GEM envs know their
  action grammar; Gymnasium envs sample their action space).
- `spec` is the rock-envs `EnvSpec` the env was made from; `unwrapped` is the innermost env.
- `observation_space`/`action_space` are Gymnasium spaces; text envs use `AnyText`.
- `snapshot() -> EnvSnapshot` captures the env's whole state (its RNG included); `restore(s)`
  puts an env made with the same id and kwargs back in it, to continue exactly as the original
  would (see `rock_envs.core.snapshot`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import gymnasium

if TYPE_CHECKING:
    from rock_envs.core.snapshot import EnvSnapshot
    from rock_envs.core.spec import EnvSpec

ObsType = TypeVar("ObsType")
ActType = TypeVar("ActType")


class Env(gymnasium.Env, Generic[ObsType, ActType]):
    """Base class of every env rock-envs hands out. See the module docstring for the contract."""

    spec: EnvSpec | None = None  # type: ignore[assignment]

    def sample_random_action(self) -> ActType:
        return self.action_space.sample()

    def snapshot(self) -> EnvSnapshot:
        """The env's whole state now: opaque and picklable; `SnapshotError` if it can be neither
        pickled nor replayed (the message says why)."""
        from rock_envs.core import snapshot

        return snapshot.take(self)

    def restore(self, snapshot: EnvSnapshot) -> None:
        """Put the env in the state of `snapshot` (taken from an env of the same id and kwargs)."""
        from rock_envs.core import snapshot as snapshots

        snapshots.restore(self, snapshot)

    def __enter__(self) -> Env[ObsType, ActType]:
        return self

    def __exit__(self, *exc_info: Any) -> Literal[False]:
        self.close()
        return False  # exceptions go on
