"""ROCK_WIRE.md §5 T8: ROCK's own `ModelService` (install, start, `anti_call_llm`, `watch_agent`) over
the ROCK wire, offline, against the ModelService that rl-rock[model-service] runs inside the sandbox;
and rock-envs' trainer-answered ModelService for an agent that calls ROCK's `localhost:8080/v1`."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.anyio

# The runtime env's Python: the sandbox's own (which has rl-rock[model-service]), never a download.
LINK_PYTHON = (
    "mkdir -p runtime-env/bin && for x in python python3 pip rock; do "
    'printf \'#!/bin/sh\\nexec %s "$@"\\n\' "$(command -v $x)" > runtime-env/bin/$x && chmod +x runtime-env/bin/$x; done'
)
AGENT_REQUEST = {"model": "policy", "messages": [{"role": "user", "content": "push the box"}]}
ANSWER = {
    "id": "c1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "\\boxed{up}"}}],
}


@pytest.mark.slow
async def test_rock_model_service_anti_call_loop(rock, monkeypatch):
    from rock.sdk.sandbox.model_service.base import ModelService, ModelServiceConfig

    monkeypatch.setenv("ROCK_PIP_INDEX_URL", "")
    monkeypatch.setenv("ROCK_RTENV_PYTHON_V31114_INSTALL_CMD", LINK_PYTHON)
    sandbox = rock.sandbox(auto_clear_seconds=1800)
    await sandbox.start()
    try:
        service = ModelService(
            sandbox,
            ModelServiceConfig(
                install_cmd="true",
                start_cmd="rock model-service start --type local --host 127.0.0.1 --port 28080",
                watch_agent_cmd="rock model-service watch-agent --pid ${pid} --host 127.0.0.1 --port 28080",
            ),
        )
        await service.install()
        await service.start()
        body = json.dumps(AGENT_REQUEST)
        started = await sandbox.arun(
            "nohup curl -s -X POST http://127.0.0.1:28080/v1/chat/completions -H 'Content-Type: application/json' "
            f"-d '{body}' -o /tmp/agent_answer.json > /dev/null 2>&1 & echo AGENT=$!"
        )
        pid = started.output.split("AGENT=")[-1].strip()
        asked = await service.anti_call_llm(0)
        assert json.loads(asked) == AGENT_REQUEST  # the agent's request reached the trainer
        await service.watch_agent(pid)
        assert (await service.anti_call_llm(1, json.dumps(ANSWER))).strip() == "SESSION_END"
        got = await sandbox.arun("cat /tmp/agent_answer.json")
        assert json.loads(got.output) == ANSWER  # the trainer's answer reached the agent
        log = await sandbox.arun("cat /data/logs/LLMService.log")
        assert all(mark in log.output for mark in ("LLM_REQUEST_START", "LLM_RESPONSE_START", "SESSION_END"))
    finally:
        await sandbox.stop()


async def test_rock_envs_model_service_at_rocks_address(embedded_dir):
    """An agent written for ROCK calls http://localhost:8080/v1; rock-envs' trainer mode answers it there
    (with the sandbox's own key, which rock-envs sets as `OPENAI_API_KEY`)."""
    from rock_envs.sandbox import Sandbox, SandboxConfig

    config = SandboxConfig(runtime_dir=embedded_dir, model_service={"mode": "trainer", "port": 8080})
    async with Sandbox(config) as sb:
        job = await sb.run_job(
            "curl -s -X POST http://localhost:8080/v1/chat/completions -H 'Content-Type: application/json' "
            '-H "Authorization: Bearer $OPENAI_API_KEY" '
            f"-d '{json.dumps(AGENT_REQUEST)}'"
        )
        async for call in sb.model_service.calls():
            assert call.request["messages"] == AGENT_REQUEST["messages"]
            await call.respond("\\boxed{up}")
            break
        await sb.wait_job(job.job_id, timeout=60)
        logs = await sb.job_logs(job.job_id)
        assert json.loads(logs.data)["choices"][0]["message"]["content"] == "\\boxed{up}"
