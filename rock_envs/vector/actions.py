"""A batch of actions in the caller, split into one action per env before anything reaches a worker.

By default actions go to the envs unchecked, as Gymnasium's and SB3's vector envs pass them (an env
that gets a bad action raises, and `on_error` decides); only the count is checked, so no action goes
to the wrong env. `make_vec(..., check_actions=True)` checks every action against the action space
here, with an `ActionError` that names the action, before any env sees the batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import iterate

from rock_envs.core.errors import ActionError
from rock_envs.core.spaces import AnyText, is_array_space


def split_actions(call: str, actions: Any, count: int, space: spaces.Space, batched: spaces.Space, check: bool) -> Any:
    """`actions` as a sequence of `count` actions (an ndarray for array spaces), checked when `check`."""
    if isinstance(actions, (dict, tuple)) and not is_array_space(space) and not isinstance(space, spaces.Text):
        actions = list(iterate(batched, actions))  # a Dict or Tuple batch, as Gymnasium batches them
    if check:
        return check_actions(call, actions, count, space)
    _check_count(call, actions, count)
    return actions


def _check_count(call: str, actions: Any, count: int) -> None:
    if isinstance(actions, (str, bytes)) or not hasattr(actions, "__len__"):
        raise ActionError(
            f"`{call}`: expected a sequence of {count} actions, got a single {type(actions).__name__}; "
            "pass one action per env, e.g. a list."
        )
    if len(actions) != count:
        raise ActionError(f"`{call}`: expected {count} actions (one per env), got {len(actions)}.")


def check_actions(call: str, actions: Any, count: int, space: spaces.Space) -> Any:
    """Return `actions` as a sequence of `count` actions valid for `space`, or raise `ActionError`."""
    _check_count(call, actions, count)
    if isinstance(space, AnyText):
        bad = [k for k, a in enumerate(actions) if not isinstance(a, str)]
        if bad:
            raise ActionError(
                f"`{call}`: text envs take str actions; action {bad[0]} is a "
                f"{type(actions[bad[0]]).__name__} ({actions[bad[0]]!r})."
            )
        return list(actions)
    if isinstance(space, spaces.Discrete):
        array = np.asarray(actions)
        if array.dtype.kind not in "iu" or array.shape != (count,):
            raise ActionError(
                f"`{call}`: expected {count} integer actions for {space}, got {array.dtype} with shape {array.shape}."
            )
        low, high = int(space.start), int(space.start + space.n)
        out = np.flatnonzero((array < low) | (array >= high))
        if out.size:
            raise ActionError(
                f"`{call}`: action {out[0]} is {array[out[0]]}, outside {space} (expected {low} <= a < {high})."
            )
        return array
    if isinstance(space, spaces.Box):
        array = np.asarray(actions, dtype=space.dtype)
        if array.shape != (count, *space.shape):
            raise ActionError(f"`{call}`: expected actions of shape {(count, *space.shape)}, got {array.shape}.")
        return array
    bad = [k for k, a in enumerate(actions) if not space.contains(a)]
    if bad:
        raise ActionError(f"`{call}`: action {bad[0]} ({actions[bad[0]]!r}) is not in {space}.")
    return list(actions)
