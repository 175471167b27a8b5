"""Observations of many envs as one batch, laid out as Gymnasium's vector envs lay them out.

Three kinds, by the single env's observation space:

- "array" (Box, Discrete, MultiBinary, MultiDiscrete): one ndarray, env i in row i.
- "tree" (Dict and Tuple whose leaves are all arrays): a dict / tuple of such ndarrays, as
  `gymnasium.vector.utils.batch_space` describes them. Workers send a batch of these, shared memory
  carries its leaves, and the caller joins them without touching single observations.
- "items" (anything else: text, Graph, Sequence, custom spaces, trees with such leaves): workers send a
  list of single observations and the caller batches them with Gymnasium's `concatenate` (for
  text a tuple of strings, as Gymnasium returns it).

A batch of kind "items" travels as a list; a tree is a dict or a tuple; so `row` can tell them apart.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, cast

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import concatenate, create_empty_array

from rock_envs.core.spaces import is_array_space


def is_array_tree(space: spaces.Space) -> bool:
    """A Dict or Tuple space whose every leaf is an array space."""
    if isinstance(space, spaces.Dict):
        children: Sequence[spaces.Space] = list(space.spaces.values())
    elif isinstance(space, spaces.Tuple):
        children = space.spaces
    else:
        return False
    return bool(children) and all(is_array_space(c) or is_array_tree(c) for c in children)


def tree_map(fn: Callable[..., Any], *trees: Any) -> Any:
    """`fn` over the leaves (ndarrays) of dict/tuple trees of the same structure."""
    first = trees[0]
    if isinstance(first, dict):
        return {key: tree_map(fn, *(t[key] for t in trees)) for key in first}
    if isinstance(first, tuple):
        return tuple(tree_map(fn, *parts) for parts in zip(*trees))
    return fn(*trees)


def tree_leaves(tree: Any) -> list[np.ndarray]:
    if isinstance(tree, dict):
        return [leaf for value in tree.values() for leaf in tree_leaves(value)]
    if isinstance(tree, tuple):
        return [leaf for value in tree for leaf in tree_leaves(value)]
    return [tree]


def _tree_from_leaves(template: Any, leaves: Any) -> Any:
    if isinstance(template, dict):
        return {key: _tree_from_leaves(value, leaves) for key, value in template.items()}
    if isinstance(template, tuple):
        return tuple(_tree_from_leaves(value, leaves) for value in template)
    return next(leaves)


class ObsBatcher:
    """Packs, joins, indexes and updates batches of one observation space (see the module's docstring)."""

    def __init__(self, space: spaces.Space):
        self.space = space
        self.kind = "array" if is_array_space(space) else "tree" if is_array_tree(space) else "items"
        self._template = create_empty_array(space, 1) if self.kind == "tree" else None

    def pack(self, items: list[Any]) -> Any:
        """A batch of `items` (single observations, in row order)."""
        if self.kind == "array":
            if not items:
                return np.zeros((0, *(self.space.shape or ())), dtype=self.space.dtype)
            # np.array copies small rows ~3x faster than np.stack; np.stack stays for what it
            # alone does right (rows of differing shapes: its error) and for lists of rows.
            try:
                packed = np.array(items) if type(items[0]) is np.ndarray else None
            except ValueError:
                packed = None
            if packed is None or packed.dtype == object or packed.shape[1:] != items[0].shape:
                return np.stack(items)
            return packed
        if self.kind == "tree":
            return concatenate(self.space, items, self.empty(len(items)))
        return list(items)

    def batch(self, items: list[Any]) -> Any:
        """What the vector env returns for `items`: `pack`, with "items" batched as Gymnasium does."""
        if self.kind != "items":
            return self.pack(items)
        if isinstance(self.space, spaces.Text):
            return tuple(items)
        return concatenate(self.space, items, self.empty(len(items)))

    def join(self, parts: list[Any]) -> Any:
        """One batch from `parts` (batches of consecutive rows), a new object."""
        if self.kind == "array":
            return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)
        if self.kind == "tree":
            return tree_map(lambda *xs: xs[0].copy() if len(xs) == 1 else np.concatenate(xs), *parts)
        return [item for part in parts for item in part]

    def row(self, batch: Any, k: int) -> Any:
        """The single observation in row `k`."""
        if self.kind == "tree":
            return tree_map(lambda x: x[k], batch)
        return batch[k]

    def set_rows(self, batch: Any, rows: list[int], items: list[Any]) -> None:
        """Write single observations `items` into `rows` of `batch` (a tree or an array), in place."""
        packed = self.pack(items)
        if self.kind == "tree":
            tree_map(lambda dest, src: dest.__setitem__(rows, src), batch, packed)
        else:
            batch[rows] = packed

    def empty(self, n: int) -> Any:
        return cast(Any, create_empty_array(self.space, n))

    # ---- leaves: what shared memory carries -------------------------------------------------

    def leaf_layout(self, n: int) -> list[tuple[tuple[int, ...], str]]:
        """(shape, dtype) of every leaf of an `n`-row batch."""
        return [(leaf.shape, leaf.dtype.str) for leaf in tree_leaves(create_empty_array(self.space, n))]

    def from_leaves(self, leaves: list[np.ndarray]) -> Any:
        if self.kind == "array":
            return leaves[0]
        return _tree_from_leaves(self._template, iter(leaves))


__all__ = ["ObsBatcher", "is_array_tree", "tree_leaves", "tree_map"]
