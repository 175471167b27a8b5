"""The part every library-facing wrapper shares: it hands the real work to the rock-envs env it holds."""

from __future__ import annotations

from typing import Any


class ForwardsToRockEnv:
    """`step`, `close` and any attribute the wrapper lacks go to `self.rock_env`. Put it first in the bases,
    so its `step` stands in for the library base class's abstract one."""

    rock_env: Any

    def step(self, action: Any) -> Any:
        return self.rock_env.step(action)

    def close(self) -> None:
        self.rock_env.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "rock_env":  # no recursion before `rock_env` is set
            raise AttributeError(name)
        return getattr(self.rock_env, name)
