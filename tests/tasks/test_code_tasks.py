"""The `code:RockTasks-v0` env: every task passes its reference answer and fails a wrong one, in a
process sandbox; the tasks are registered ids."""

from __future__ import annotations

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
