"""Test envs for the vector suite, pickled by value (see conftest) so workers need not import tests."""

from __future__ import annotations

import os
import time
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

NORMAL, SLOW, RAISE, TERMINATE = 0, 1, 2, 3


class ProbeEnv(gymnasium.Env):
    """obs = [steps in this episode, seed of the last seeded reset, pid of its process].

    Actions: 0 steps normally, 1 sleeps `delay` seconds first, 2 raises in `step`, 3 terminates.
    `reset(options={"fail_once": path})` raises once, in whichever env and process comes first.
    """

    def __init__(self, delay: float = 3.0):
        self.delay = delay
        self.observation_space = spaces.Box(-np.inf, np.inf, (3,), np.float64)
        self.action_space = spaces.Discrete(4)
        self.steps = 0
        self.seed_used = -1

    def _obs(self) -> np.ndarray:
        return np.array([self.steps, self.seed_used, os.getpid()], dtype=np.float64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options and options.get("fail_once"):
            try:
                os.close(os.open(options["fail_once"], os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                raise ValueError("boom in reset")
        if seed is not None:
            self.seed_used = seed
        self.steps = 0
        return self._obs(), {"where": "reset"}

    def step(self, action: int):
        if action == SLOW:
            time.sleep(self.delay)
        if action == RAISE:
            raise RuntimeError("boom in step")
        self.steps += 1
        return self._obs(), 1.0, action == TERMINATE, False, {"steps": self.steps}


# The env ids and actions the vector suite steps.
SOKOBAN = "game:Sokoban-v0-easy"
GUESS = "game:GuessTheNumber-v0-easy"
CARTPOLE = "CartPole-v1"
MOVES = ["\\boxed{up}", "\\boxed{down}", "\\boxed{left}", "\\boxed{right}"]
