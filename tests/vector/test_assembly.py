"""Assembling workers' batches: whatever order the workers answer in, rows come out in env order."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from rock_envs.vector.assembly import Assembler
from rock_envs.worker.protocol import Batch


def test_batches_of_workers_that_answered_out_of_order_give_rows_in_env_order():
    assembler = Assembler(5, spaces.Box(-10, 10, (2,), np.float64))
    late = Batch([3, 4], np.array([[3.0, 3], [4, 4]]), [0.3, 0.4], [False, True], [False, False], [{}, {"x": 1}])
    early = Batch([0, 1, 2], np.array([[0.0, 0], [1, 1], [2, 2]]), [0.0, 0.1, 0.2], [False] * 3, [True] * 3, [{}] * 3)
    obs, rewards, terms, truncs, infos = assembler.assemble(list(range(5)), [late, early], {})
    np.testing.assert_array_equal(obs[:, 0], [0, 1, 2, 3, 4])
    assert rewards.tolist() == [0.0, 0.1, 0.2, 0.3, 0.4] and terms.tolist() == [False] * 4 + [True]
    assert truncs.tolist() == [True] * 3 + [False] * 2 and infos["_x"].tolist() == [False] * 4 + [True]
