"""``code:RockTasks-v0``: small programming tasks, each checked by running its tests inside a sandbox.

A single-turn GEM env: ``reset`` gives the task statement; ``step(action)`` takes the first
```python block (or ``<python>...</python>``, or the whole text) as ``solution.py``, runs the task's
tests next to it in a rock-envs sandbox (no network, limited memory, pids and time), and ends the
episode with reward 1.0 if every test passed, else 0.0. ``info`` carries the test output.
``close()`` stops the sandbox; safe to call twice.
"""

from __future__ import annotations

import random
import re
import sys
from dataclasses import dataclass
from typing import Any, Optional

from gem.core import Env

from rock_envs.sandbox import SandboxConfig
from rock_envs.sandbox.sdk.sync import LazySandbox


@dataclass(frozen=True)
class CodeTask:
    name: str
    statement: str
    tests: str
    """A Python script that imports ``solution`` and raises (e.g. ``assert``) when it is wrong."""


TASKS: dict[str, CodeTask] = {
    t.name: t
    for t in [
        CodeTask(
            "add",
            "Write a function `add(a, b)` that returns the sum of two integers.",
            "from solution import add\nassert add(2, 3) == 5\nassert add(-4, 4) == 0\n",
        ),
        CodeTask(
            "reverse_words",
            "Write a function `reverse_words(s)` that returns the words of `s` in reverse "
            "order, joined by single spaces.",
            "from solution import reverse_words\nassert reverse_words('a b c') == 'c b a'\n"
            "assert reverse_words('  hello   world ') == 'world hello'\n",
        ),
        CodeTask(
            "fizzbuzz",
            "Write a function `fizzbuzz(n)` returning the list of strings for 1..n: 'Fizz' for "
            "multiples of 3, 'Buzz' for multiples of 5, 'FizzBuzz' for both, else the number.",
            "from solution import fizzbuzz\nassert fizzbuzz(5) == ['1', '2', 'Fizz', '4', 'Buzz']\n"
            "assert fizzbuzz(15)[-1] == 'FizzBuzz'\n",
        ),
        CodeTask(
            "is_palindrome",
            "Write a function `is_palindrome(s)` that says whether `s` reads the same "
            "backwards, ignoring case and anything that is not a letter or digit.",
            "from solution import is_palindrome\nassert is_palindrome('A man, a plan, a canal: Panama')\n"
            "assert not is_palindrome('rock-envs')\n",
        ),
        CodeTask(
            "running_sum",
            "Write a function `running_sum(xs)` returning the list of prefix sums of `xs`.",
            "from solution import running_sum\nassert running_sum([1, 2, 3]) == [1, 3, 6]\n"
            "assert running_sum([]) == []\n",
        ),
    ]
}

BLOCKS = (r"```python\n?(.*?)```", r"<python>(.*?)</python>")


def extract_code(action: str) -> str:
    for pattern in BLOCKS:
        match = re.search(pattern, action, re.DOTALL)
        if match:
            return match.group(1).strip() + "\n"
    return action


class CodeTaskEnv(LazySandbox, Env):
    """One task per episode (``task=None``: drawn with the reset's seed), checked in a sandbox."""

    worker_threads = 16
    """A worker hosting these envs steps 16 at once (`rock_envs.worker.overlap.declared_threads`):
    each step mostly waits on its sandbox."""

    def __init__(
        self,
        task: Optional[str] = None,
        timeout: float = 20.0,
        config: SandboxConfig | None = None,
        python: str | None = None,
    ):
        super().__init__()
        if task is not None and task not in TASKS:
            from rock_envs.core.errors import EnvArgumentError

            raise EnvArgumentError(f"`CodeTaskEnv`: unknown task {task!r}; known: {', '.join(TASKS)}.")
        self.task_name, self.timeout = task, timeout
        self.config = config or SandboxConfig(memory="512m", pids_limit=64, cpus=1.0)
        self.python = python or (sys.executable if self.config.runtime == "process" else "python3")
        self.rng = random.Random()
        self.task: CodeTask | None = None

    def reset(self, seed: Optional[int] = None) -> tuple[str, dict[str, Any]]:
        if seed is not None:
            self.rng.seed(seed)
        self.task = TASKS[self.task_name] if self.task_name else TASKS[self.rng.choice(sorted(TASKS))]
        prompt = f"{self.task.statement}\nAnswer with the whole of `solution.py` in one ```python block."
        return prompt, {"task": self.task.name}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.task is None:
            from rock_envs.core.errors import RockEnvsError

            raise RockEnvsError("`CodeTaskEnv.step`: call `reset()` first.")
        passed, output = check(self.sandbox, self.task, extract_code(action), self.timeout, self.python)
        obs = "All tests passed." if passed else "Tests failed:\n" + output[-2000:]
        return obs, 1.0 if passed else 0.0, True, False, {"task": self.task.name, "passed": passed, "output": output}


def check(sandbox: Any, task: CodeTask, code: str, timeout: float = 20.0, python: str = "python3") -> tuple[bool, str]:
    """Run ``task``'s tests against ``code`` in ``sandbox`` (a ``SyncSandbox``); ``(passed, output)``."""
    workdir = f"check_{task.name}"
    sandbox.run(f"rm -rf {workdir} && mkdir -p {workdir}", timeout=30)
    sandbox.write_file(f"{workdir}/solution.py", code)
    sandbox.write_file(f"{workdir}/test_solution.py", task.tests)
    result = sandbox.run(f"cd {workdir} && {python} test_solution.py", timeout=timeout, max_output=64 * 1024)
    return result.exit_code == 0 and not result.timed_out, (result.output + result.stderr).strip()


async def acheck(
    sandbox: Any, task: CodeTask, code: str | None = None, timeout: float = 20.0, python: str = "python3"
) -> tuple[bool, str]:
    """:func:`check` for an async ``Sandbox``; ``code=None`` checks the ``solution.py`` already in its root."""
    workdir = f"check_{task.name}"
    if code is None:
        code = await sandbox.read_file("solution.py")
    await sandbox.arun(f"rm -rf {workdir} && mkdir -p {workdir}", timeout=30)
    await sandbox.write_file(f"{workdir}/solution.py", code)
    await sandbox.write_file(f"{workdir}/test_solution.py", task.tests)
    result = await sandbox.arun(f"cd {workdir} && {python} test_solution.py", timeout=timeout, max_output=64 * 1024)
    return result.exit_code == 0 and not result.timed_out, (result.output + result.stderr).strip()
