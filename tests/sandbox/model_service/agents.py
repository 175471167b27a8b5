"""Agents for the model-service tests: a script written into a sandbox, run while its chat calls are answered."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from rock_envs.sandbox import CommandResult, Sandbox
from rock_envs.sandbox.model_service import ModelCall
from tests.support.paths import PYTHON

Answer = Callable[[ModelCall], Awaitable[None]]


async def run_with_answers(sb: Sandbox, cmd: str, answer: Answer | None, timeout: float = 120) -> CommandResult:
    """Run ``cmd`` in ``sb`` while ``answer`` handles every call it makes to the chat API."""
    run = asyncio.ensure_future(sb.arun(cmd, timeout=timeout))
    if answer is None:
        return await run

    async def serve() -> None:
        async for call in sb.model_service.calls():
            await answer(call)

    serving = asyncio.ensure_future(serve())
    try:
        return await run
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


async def script(sb: Sandbox, name: str, text: str) -> str:
    await sb.write_file(name, text)
    return f"{PYTHON} {name}"


def failing_call_agent(exception: str, field: str) -> str:
    """An agent script that makes one chat call, catches `openai.<exception>` and prints the status
    code and `body[field]`."""
    return f"""
import openai
try:
    openai.OpenAI(max_retries=0).chat.completions.create(model="m", messages=[{{"role": "user", "content": "?"}}])
except openai.{exception} as exc:
    print(exc.status_code, exc.body["{field}"])
"""
