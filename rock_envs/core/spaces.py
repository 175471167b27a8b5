"""Spaces for text envs: GEM observations and actions are free text, so their space accepts any str."""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium import spaces

_SAMPLE_CHARSET = string.ascii_letters + string.digits + string.punctuation + " "


class AnyText(spaces.Text):
    """A `gymnasium.spaces.Text` that contains every `str` of at most `max_length` characters.

    Gymnasium's own `Text` only admits a fixed charset; GEM boards use characters such as '√',
    so the charset is used for sampling only, never for membership.
    """

    def __init__(self, max_length: int = 1 << 20, seed: int | np.random.Generator | None = None):
        super().__init__(max_length=max_length, min_length=0, charset=_SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"AnyText(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, AnyText) and other.max_length == self.max_length


def is_array_space(space: spaces.Space) -> bool:
    """Observations of these spaces are stacked into one numpy array across envs."""
    return isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiBinary, spaces.MultiDiscrete))
