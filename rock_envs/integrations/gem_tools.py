"""GEM tools whose code runs in a rock-envs sandbox instead of a bare subprocess.

    from gem.tools.tool_env_wrapper import ToolEnvWrapper
    from rock_envs.integrations.gem_tools import SandboxBashTool, SandboxPythonTool

    tools = [SandboxPythonTool(timeout=10), SandboxBashTool(timeout=10)]
    env = ToolEnvWrapper(gem.make("math:GSM8K"), tools=tools)     # any GEM env
    ...
    for tool in tools: tool.close()                                 # stops their sandboxes

Each tool starts one sandbox on first use (``config``: runtime, memory, cpus, pids, no network by
default) and keeps it, so files and installed state persist between calls of one episode; ``reset``
wipes its working directory. A call runs with ``timeout`` seconds and ``max_output`` bytes per stream;
its stdout (and stderr) come back as the tool observation, GEM's ``(is_valid, has_error, observation,
parsed_action)``. ``close()`` stops the sandbox; safe to call twice. A vector env of such envs steps
16 of them at once in each worker (the tools declare ``worker_threads``), so their sandbox calls
overlap.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from gem.tools.base_tool import BaseTool

from rock_envs.sandbox import CommandResult, SandboxConfig
from rock_envs.sandbox.sdk.sync import LazySandbox

PYTHON_PATTERNS = (r"<python>(.*?)</python>", r"```python\n?(.*?)```")
BASH_PATTERNS = (r"<bash>(.*?)</bash>", r"```(?:bash|sh)\n?(.*?)```")


def first_block(action: str, patterns: tuple[str, ...]) -> tuple[str | None, str]:
    """The first code block of any pattern and the action up to its end; ``(None, action)`` if none."""
    best: re.Match[str] | None = None
    for pattern in patterns:
        match = re.search(pattern, action, re.DOTALL)
        if match and (best is None or match.end() < best.end()):
            best = match
    if best is None:
        return None, action
    return best.group(1).strip(), action[: best.end()]


class _SandboxTool(LazySandbox, BaseTool):
    tool_type = "sandbox"
    patterns: tuple[str, ...] = ()
    worker_threads = 16
    """A worker hosting envs with this tool steps 16 at once (see `rock_envs.worker.overlap`): a
    tool call mostly waits on its sandbox."""

    def __init__(
        self,
        timeout: float = 10.0,
        config: SandboxConfig | None = None,
        max_output: int = 16 * 1024,
        python: str | None = None,
    ):
        super().__init__(num_workers=1)
        self.timeout, self.max_output = timeout, max_output
        self.config = config or SandboxConfig(memory="512m", pids_limit=128, cpus=1.0)
        self.python = python or (sys.executable if self.config.runtime == "process" else "python3")
        self._count = 0

    def reset(self) -> None:
        """Forget the episode: a fresh working directory (the sandbox itself is reused)."""
        if self._sandbox is not None:
            self._sandbox.run("find . -mindepth 1 -delete", timeout=30)

    interpreter: str | None = None  # what runs a snippet file; None: the sandbox's Python
    suffix: str = ".py"

    def _command(self, code: str) -> str:
        self._count += 1
        name = f".tool/snippet_{self._count}{self.suffix}"
        self.sandbox.write_file(name, code)
        return f"{self.interpreter or self.python} {name}"

    instructions: str  # what the model is told about the tool (each tool says its own)

    def instruction_string(self) -> str:
        return self.instructions

    def execute_action(self, action: str) -> tuple[bool, bool, str, str]:
        code, parsed_action = first_block(action, self.patterns)
        if code is None:
            return False, True, "", action
        result = self.sandbox.run(self._command(code), timeout=self.timeout, max_output=self.max_output)
        return True, not _ok(result), "Code execution result: " + _observation(result) + "\n", parsed_action


class SandboxPythonTool(_SandboxTool):
    """``<python>...</python>`` (or a fenced python block) run with the sandbox's Python."""

    tool_type = "python_code"
    patterns = PYTHON_PATTERNS

    instructions = (
        "You may run Python code: put a complete script inside <python>...</python>. It runs in an "
        "isolated sandbox without network and its output is shown to you after 'Code execution result:'. "
        "Give your final answer within \\boxed{}."
    )


class SandboxBashTool(_SandboxTool):
    """``<bash>...</bash>`` (or a fenced bash block) run with ``bash``."""

    tool_type = "bash"
    patterns = BASH_PATTERNS

    instructions = (
        "You may run shell commands: put them inside <bash>...</bash>. They run in an isolated sandbox "
        "without network and their output is shown to you after 'Code execution result:'."
    )

    interpreter, suffix = "bash", ".sh"


def _ok(result: CommandResult) -> bool:
    return result.exit_code == 0 and not result.timed_out


def _observation(result: CommandResult) -> str:
    text = result.output + (("\n" + result.stderr) if result.stderr else "")
    if result.timed_out:
        text += "\n[timed out; killed]"
    if result.truncated:
        text += "\n[output truncated]"
    return text.lstrip(" \n")


def tools(timeout: float = 10.0, config: SandboxConfig | None = None, **kwargs: Any) -> list[_SandboxTool]:
    """A python and a bash tool sharing nothing but their settings (each has its own sandbox)."""
    return [SandboxPythonTool(timeout, config, **kwargs), SandboxBashTool(timeout, config, **kwargs)]
