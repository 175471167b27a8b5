"""The `code:RockTasks-v0` env: every task passes its reference answer and fails a wrong one, in a
process sandbox; the tasks are registered ids."""

from __future__ import annotations

import re
from typing import Any

import pytest

import rock_envs
from rock_envs.sandbox import SandboxConfig
from rock_envs.tasks.code_tasks import TASKS, CodeTaskEnv
from tests.support.envs import CODE_SOLUTIONS


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_code_task_passes_its_reference_and_fails_a_wrong_answer(task: str, embedded_dir: str) -> None:
    env = CodeTaskEnv(task=task, config=SandboxConfig(runtime_dir=embedded_dir))
    try:
        env.reset()
        *_, reward, terminated, _, info = env.step(f"Here:\n```python\n{CODE_SOLUTIONS[task]}```")
        assert (reward, terminated) == (1.0, True), info["output"]
        env.reset()
        _, reward, _, _, info = env.step("```python\ndef nothing(): pass\n```")
        assert reward == 0.0 and "Error" in info["output"]
    finally:
        env.close()
        env.close()


def test_code_tasks_are_registered_ids() -> None:
    spec = rock_envs.registry.spec("code:RockTasks-v0-fizzbuzz")
    assert spec.source.startswith("catalog:") and spec.kwargs == {"task": "fizzbuzz"}
    env = rock_envs.registry.load_entry_point(spec)(**spec.kwargs)
    assert isinstance(env, CodeTaskEnv) and env.reset()[1] == {"task": "fizzbuzz"}
    env.close()
    assert rock_envs.registry.spec("code:RockTasks-v0").entry_point == "rock_envs.tasks.code_tasks:CodeTaskEnv"


# A right answer to `add` whose import records when its sandboxed test run started and ended.
TIMED_ADD = (
    "```python\nimport time\nprint('ran', time.time(), end=' ')\ntime.sleep(1.0)\nprint(time.time())\n"
    + CODE_SOLUTIONS["add"]
    + "```"
)


def spans(outputs: Any) -> list[tuple[float, float]]:
    """The (start, end) each sandboxed run printed (`TIMED_ADD`, or a tool's `date` pair)."""
    out = []
    for text in outputs:
        start, end = re.search(r"(\d+\.\d+)\s+(\d+\.\d+)", text).groups()  # type: ignore[union-attr]
        out.append((float(start), float(end)))
    return out


@pytest.mark.parametrize("worker_threads", [None, 1])
def test_a_batch_of_code_task_envs_runs_its_sandbox_calls_at_once(
    worker_threads: int | None, embedded_dir: str
) -> None:
    """code:RockTasks-v0 by default: the four envs of one worker are all in their sandboxes at one
    instant (each run starts before any ends); with worker_threads=1 each starts after the one before."""
    config = SandboxConfig(runtime_dir=embedded_dir)
    with rock_envs.make_vec(
        "code:RockTasks-v0", 4, num_workers=1, worker_threads=worker_threads, task="add", config=config
    ) as venv:
        venv.reset(seed=0)
        _, rewards, terminated, _, infos = venv.step([TIMED_ADD] * 4)
        assert list(rewards) == [1.0] * 4 and terminated.all(), infos["output"]
        runs = sorted(spans(infos["output"]))
    if worker_threads is None:
        assert max(start for start, _ in runs) < min(end for _, end in runs), runs
    else:
        assert all(later[0] >= earlier[1] for earlier, later in zip(runs, runs[1:])), runs
