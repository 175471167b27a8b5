"""The env ids and actions tests step, an answer to each code task, and small test envs.

The test envs are pickled by value (registered at the end of this module), so workers in other
processes, containers and sandboxes need not import the tests.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import threading
import time
from typing import Any

import cloudpickle
import gymnasium
import numpy as np
from gymnasium import spaces

SOKOBAN = "game:Sokoban-v0-easy"
GUESS = "game:GuessTheNumber-v0-easy"
CARTPOLE = "CartPole-v1"
MOVES = ["\\boxed{up}", "\\boxed{down}", "\\boxed{left}", "\\boxed{right}"]

# A right answer to each task of `code:RockTasks-v0` (rock_envs/tasks/code_tasks.py).
CODE_SOLUTIONS = {
    "add": "def add(a, b):\n    return a + b\n",
    "reverse_words": "def reverse_words(s):\n    return ' '.join(reversed(s.split()))\n",
    "fizzbuzz": "def fizzbuzz(n):\n    return ['FizzBuzz' if i % 15 == 0 else 'Fizz' if i % 3 == 0 else 'Buzz' if i % 5 == 0 else str(i) for i in range(1, n + 1)]\n",
    "is_palindrome": "def is_palindrome(s):\n    t = [c.lower() for c in s if c.isalnum()]\n    return t == t[::-1]\n",
    "running_sum": "def running_sum(xs):\n    out, total = [], 0\n    for x in xs:\n        total += x\n        out.append(total)\n    return out\n",
}

# ProbeEnv's actions.
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


class SleepEnv(gymnasium.Env):
    """Its action is how long a step sleeps (so a kill lands mid-step); obs = [steps], or [seed] after reset."""

    observation_space = spaces.Box(0.0, 1e9, (1,), np.float64)
    action_space = spaces.Box(0.0, 60.0, (), np.float64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([float(seed or 0)]), {}

    def step(self, action: Any):
        time.sleep(float(action))
        self.t += 1
        return np.array([float(self.t)]), 1.0, False, False, {}


class InterruptEnv(SleepEnv):
    """`SleepEnv` whose step raises KeyboardInterrupt for a negative action, as Ctrl-C would mid-step."""

    action_space = spaces.Box(-1.0, 60.0, (), np.float64)

    def step(self, action: Any):
        if float(action) < 0:
            raise KeyboardInterrupt
        return super().step(action)


class LockedEnv(gymnasium.Env):
    """A deterministic random walk that holds a lock, so it does not pickle: snapshots replay it."""

    observation_space = spaces.Box(-1e6, 1e6, (2,), np.float64)
    action_space = spaces.Discrete(3)

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.position = 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.position = float(self.np_random.integers(0, 100))
        return np.array([self.position, 0.0]), {}

    def step(self, action: int):
        self.position += float(action) - 1.0 + float(self.np_random.normal())
        return np.array([self.position, float(action)]), self.position, abs(self.position) > 200, False, {}


class LockedTextEnv:
    """A text env (not a Gymnasium one) that holds a lock and draws from OS entropy when reset
    without a seed: it can be neither pickled nor replayed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.word = ""

    def reset(self, seed: int | None = None):
        self.word = random.Random(seed).choice(["apple", "pear", "plum"]) if seed is not None else os.urandom(4).hex()
        return self.word, {}

    def step(self, action: str):
        return f"{self.word}:{action}", 0.0, False, False, {}


class NoisyEnv(gymnasium.Env):
    """Deterministic for `noisy_from - 1` steps of an episode; from step `noisy_from` on, obs and
    reward come from OS entropy (a deliberately non-deterministic env)."""

    observation_space = spaces.Box(-1e9, 1e9, (1,), np.float64)
    action_space = spaces.Discrete(2)

    def __init__(self, noisy_from: int = 5) -> None:
        self.noisy_from = noisy_from
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([float(self.np_random.integers(0, 1000))]), {}

    def step(self, action: int):
        self.t += 1
        value = float(int.from_bytes(os.urandom(4), "big")) if self.t >= self.noisy_from else float(self.t + action)
        return np.array([value]), 1.0, False, self.t >= 50, {}


class WaitEnv(gymnasium.Env):
    """An env whose step waits (a sleep standing in for I/O) a draw of its own generator times
    `scale` seconds, so envs stepped at once finish in a scrambled order; obs = [draw, steps].
    An episode lasts 4 steps, 6 after an action 1."""

    observation_space = spaces.Box(0.0, 1e9, (2,), np.float64)
    action_space = spaces.Discrete(2)

    def __init__(self, scale: float = 0.02) -> None:
        self.scale = scale
        self.t = 0
        self.length = 4

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t, self.length = 0, 4
        return np.array([float(self.np_random.random()), 0.0]), {"where": "reset"}

    def _advance(self, action: int) -> tuple[float, tuple[Any, ...]]:
        draw = float(self.np_random.random())
        self.t += 1
        self.length += 2 * int(action)
        obs = np.array([draw, float(self.t)])
        return draw * self.scale, (obs, draw, self.t >= self.length, False, {"t": self.t})

    def step(self, action: int):
        wait, result = self._advance(action)
        time.sleep(wait)
        return result


class AsyncWaitEnv(WaitEnv):
    """`WaitEnv` with `async def step/reset`: it awaits `asyncio.sleep` instead of sleeping."""

    async def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # type: ignore[override]
        await asyncio.sleep(0)
        return WaitEnv.reset(self, seed=seed, options=options)

    async def step(self, action: int):  # type: ignore[override]
        wait, result = self._advance(action)
        await asyncio.sleep(wait)
        return result


class DrawTextEnv:
    """A text env (GEM-like, so rock-envs gives it its own `random`) that draws from Python's global
    `random` and waits between draws, so envs on threads interleave their draws."""

    def reset(self, seed: int | None = None):
        if seed is not None:
            random.seed(seed)
        return self._draws(), {}

    def _draws(self) -> str:
        out = []
        for _ in range(3):
            out.append(random.randrange(1000))
            time.sleep(0.002)
        return " ".join(map(str, out))

    def step(self, action: str):
        return f"{action}:{self._draws()}", 0.0, False, False, {}


class AsyncProbeEnv(ProbeEnv):
    """`ProbeEnv` with `async def step`: action 1 awaits `asyncio.sleep(delay)`."""

    async def step(self, action: int):  # type: ignore[override]
        if action == SLOW:
            await asyncio.sleep(self.delay)
            action = NORMAL
        return ProbeEnv.step(self, action)


def sync_cartpoles(num_envs: int, **kwargs: Any) -> gymnasium.vector.VectorEnv:
    """A plugin's own native vector env (a `vector_entry_point`): CartPoles in a SyncVectorEnv."""
    return gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make("CartPole-v1", **kwargs)] * num_envs)


cloudpickle.register_pickle_by_value(sys.modules[__name__])
