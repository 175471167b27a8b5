"""Sandboxed GEM tools (with GEM's ToolEnvWrapper, on a code task), on the process runtime."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from gem.tools.tool_env_wrapper import ToolEnvWrapper

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
