"""A tiny env for the fault tests: its action is how long a step sleeps (so a kill lands mid-step).
Pickled by value, so workers in sandboxes need not import this module."""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np


class SleepEnv(gym.Env):
    observation_space = gym.spaces.Box(0.0, 1e9, (1,), np.float64)
    action_space = gym.spaces.Box(0.0, 60.0, (), np.float64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([float(seed or 0)]), {}

    def step(self, action: Any):
        time.sleep(float(action))
        self.t += 1
        return np.array([float(self.t)]), 1.0, False, False, {}
