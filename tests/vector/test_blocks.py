"""Which envs share a worker: even blocks, and blocks that never mix two keys (a docker mix of images)."""

from __future__ import annotations

import re

import pytest

import rock_envs
from rock_envs.vector.blocks import even_blocks, keyed_blocks


def test_even_blocks_differ_by_one_env_at_most():
    assert even_blocks(5, 2) == [[0, 1], [2, 3, 4]]
    assert even_blocks(3, 3, start=4) == [[4], [5], [6]]


def test_keyed_blocks_split_each_run_and_give_spare_workers_to_the_largest():
    keys = ["a", "a", "b", "b", "b", "b", "b", "b", "a"]
    assert keyed_blocks(keys, None, 2, None) == [[0, 1], [2, 3, 4, 5, 6, 7], [8]]  # one worker per run, at least
    assert keyed_blocks(keys, 5, 2, None) == [[0, 1], [2, 3], [4, 5], [6, 7], [8]]
    assert keyed_blocks(keys, None, 2, 4) == [[0, 1], [2, 3, 4], [5, 6, 7], [8]]  # envs_per_container=4


def test_fewer_workers_than_runs_is_a_clear_error():
    with pytest.raises(rock_envs.EnvArgumentError, match=re.escape("need at least 3 workers") + ".*num_workers=2"):
        keyed_blocks(["a", "b", "a"], 2, 2, None)
