"""Spaces for text envs: GEM observations and actions are free text, so their space accepts any str."""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.spaces.utils import is_space_dtype_shape_equiv

from rock_envs.core.errors import EnvArgumentError, SpaceMismatchError

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


# ---- the spaces of the envs of one vector env --------------------------------------------------

ObservationMode = Any  # "same" | "different" | (batched observation space, single observation space)


def check_observation_mode(mode: ObservationMode) -> None:
    """Refuse what Gymnasium's vector envs refuse as `observation_mode` (an `EnvArgumentError` is a
    ValueError and a TypeError, as Gymnasium raises)."""
    if isinstance(mode, tuple) and len(mode) == 2:
        if not all(isinstance(space, spaces.Space) for space in mode):
            raise EnvArgumentError(
                "`make_vec`: observation_mode as a tuple must hold two Spaces (the batched observation space, "
                f"then the single one), got {type(mode[0]).__name__} and {type(mode[1]).__name__}."
            )
    elif mode not in ("same", "different"):
        raise EnvArgumentError(
            "`make_vec`: Invalid `observation_mode`, expected: 'same' or 'different' or tuple of single and batch "
            f"observation space, actual got {mode}"  # Gymnasium's words, which its users match on
        )


def check_same_spaces(a: Any, b: Any, name_a: str, name_b: str, same_observations: bool = True) -> None:
    """Raise `SpaceMismatchError` unless `a` and `b` (envs, or their workers' `Built` replies) can share
    one vector env: equal action spaces, and observation spaces that are equal (`same_observations`)
    or of one shape and dtype (Gymnasium's `observation_mode="different"`)."""
    if a.action_space != b.action_space:
        raise SpaceMismatchError(
            f"`make_vec`: every env must have the same action_space; {name_a} has {a.action_space}, "
            f"{name_b} has {b.action_space}. Make envs of one kind per vector env."
        )
    obs_a, obs_b = a.observation_space, b.observation_space
    if same_observations and obs_a != obs_b:
        raise SpaceMismatchError(
            f"`make_vec(..., observation_mode='same')`: the sub-environments observation spaces are not "
            f"equivalent. {name_a} has {obs_a}, {name_b} has {obs_b}. If this is intentional, use "
            "`observation_mode='different'` instead."
        )
    if not same_observations and not is_space_dtype_shape_equiv(obs_a, obs_b):
        raise SpaceMismatchError(
            f"`make_vec(..., observation_mode='different')`: observation spaces must share a shape and dtype "
            f"to be batched; {name_a} has {obs_a}, {name_b} has {obs_b}."
        )
