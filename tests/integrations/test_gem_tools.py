"""Sandboxed GEM tools (with GEM's ToolEnvWrapper, on a code task), on the process runtime."""

from __future__ import annotations

import functools
import re
from typing import Any, Iterator

import pytest
from gem.tools.tool_env_wrapper import ToolEnvWrapper

import rock_envs
from rock_envs.integrations.gem_tools import SandboxBashTool, SandboxPythonTool
from rock_envs.sandbox import SandboxConfig
from rock_envs.tasks.code_tasks import CodeTaskEnv
from tests.support.envs import CODE_SOLUTIONS


@pytest.fixture
def tools(embedded_dir: str) -> Iterator[list[Any]]:
    config = SandboxConfig(runtime_dir=embedded_dir, memory="256m", pids_limit=64)
    made = [SandboxPythonTool(timeout=5, config=config), SandboxBashTool(timeout=5, config=config)]
    yield made
    for tool in made:
        tool.close()
        tool.close()  # twice is fine


def test_python_and_bash_tools_run_in_a_sandbox_under_toolenvwrapper(tools: list[Any]) -> None:
    env = ToolEnvWrapper(CodeTaskEnv(task="add", config=tools[0].config), tools=tools, max_tool_uses=5)
    try:
        obs, _ = env.reset(seed=0)
        assert "add(a, b)" in obs
        obs, reward, terminated, _, info = env.step("let me check <python>print(6 * 7)</python>")
        assert "Code execution result: 42" in obs and not terminated and info["tool_type"] == "python_code"
        obs, _, _, _, info = env.step("<bash>echo from-bash; tail -n +3 /proc/net/dev | cut -d: -f1</bash>")
        assert obs.split()[3:] == ["from-bash", "lo"] and info["tool_type"] == "bash"  # no network but loopback
        obs, reward, terminated, _, info = env.step(CODE_SOLUTIONS["add"])  # no tool block: the answer goes to the env
        assert terminated and reward == 1.0 and info["passed"]
    finally:
        env.env.close()


def test_a_tool_call_is_bounded_by_its_timeout_and_the_sandbox_lives_on(tools: list[Any]) -> None:
    # called directly: GEM's ToolEnvWrapper hands a failed call on to the next tool, then to the env
    is_valid, has_error, observation, _ = tools[0].execute_action("<python>import time; time.sleep(60)</python>")
    assert is_valid and has_error and "timed out" in observation
    is_valid, has_error, observation, _ = tools[0].execute_action("<python>print('still here')</python>")
    assert (is_valid, has_error) == (True, False) and "still here" in observation
    _, has_error, observation, _ = tools[1].execute_action("<bash>exit 3</bash>")
    assert has_error


def test_a_tool_call_without_code_is_invalid_and_runs_nothing(tools: list[Any]) -> None:
    is_valid, has_error, observation, _ = tools[0].execute_action("no code here")
    assert (is_valid, has_error, observation) == (False, True, "")
    assert tools[0]._sandbox is None  # nothing started


def tool_env(config: SandboxConfig) -> Any:
    return ToolEnvWrapper(CodeTaskEnv(task="add", config=config), tools=[SandboxBashTool(config=config)])


TIMED_SLEEP = "<bash>date +%s.%N; sleep 1; date +%s.%N</bash>"


@pytest.mark.parametrize("worker_threads", [None, 1])
def test_a_batch_of_tool_envs_runs_its_tool_calls_at_once(worker_threads: int | None, embedded_dir: str) -> None:
    """Envs built by a plain callable: the tools' own `worker_threads` has the worker step its four
    envs at once, so every sandboxed `sleep 1` is running at one instant; worker_threads=1 says
    one after another, and each starts after the one before ended."""
    config = SandboxConfig(runtime_dir=embedded_dir, memory="256m", pids_limit=64)
    with rock_envs.make_vec(
        functools.partial(tool_env, config), 4, num_workers=1, worker_threads=worker_threads
    ) as venv:
        venv.reset(seed=0)
        obs, _, terminated, _, infos = venv.step([TIMED_SLEEP] * 4)
        assert not terminated.any() and list(infos["tool_type"]) == ["bash"] * 4, obs
        runs = sorted(
            (float(start), float(end))
            for start, end in (re.search(r"(\d+\.\d+)\s+(\d+\.\d+)", text).groups() for text in obs)  # type: ignore[union-attr]
        )
    if worker_threads is None:
        assert max(start for start, _ in runs) < min(end for _, end in runs), runs
    else:
        assert all(later[0] >= earlier[1] for earlier, later in zip(runs, runs[1:])), runs
