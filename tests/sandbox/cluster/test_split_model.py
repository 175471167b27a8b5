"""ModelService calls through data replicas reach the trainer: a replica forwards ``/v1/*`` (agents)
and ``/model/*`` (the trainer) to the control plane, whose hub holds the queue."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from rock_envs.sandbox import Sandbox, SandboxConfig
from rock_envs.sandbox.model_service import ModelService
from tests.sandbox.cluster.conftest import Cluster, start_cluster
from tests.sandbox.model_service.agents import run_with_answers, script
from tests.support.redis import RedisProcess

pytestmark = pytest.mark.anyio
CALL = """
import openai
client = openai.OpenAI(max_retries=0)
r = client.chat.completions.create(model="policy", messages=[{"role": "user", "content": "in-sandbox"}])
print(r.choices[0].message.content)
"""


def config(cluster: Cluster) -> SandboxConfig:
    return SandboxConfig(
        base_url=cluster.control.url, data_urls=cluster.data_urls, token=cluster.control.token, model_service="trainer"
    )


async def test_an_agent_run_through_a_replica_has_its_calls_answered_by_the_trainer(cluster: Cluster) -> None:
    async with Sandbox(config(cluster)) as sb:

        async def answer(call) -> None:  # type: ignore[no-untyped-def]
            await call.respond(f"seen {call.request['messages'][0]['content']}")

        result = await run_with_answers(sb, await script(sb, "agent.py", CALL), answer)
        assert result.output.strip() == "seen in-sandbox", result.stderr
        records = await sb.model_service.trajectory(sb.id)
        assert [r.status for r in records] == ["answered"]


async def test_calls_sent_to_a_replica_reach_a_trainer_polling_another(cluster: Cluster) -> None:
    async with Sandbox(config(cluster)) as sb:
        key = (await sb.arun("printenv OPENAI_API_KEY")).output.strip()
        trainer = ModelService(base_url=cluster.data_urls[2], token=cluster.control.token, sandbox_id=sb.id)

        async def train() -> None:
            async for call in trainer.calls():
                await call.respond("from the trainer")
                return

        training = asyncio.ensure_future(train())
        body = {"model": "policy", "messages": [{"role": "user", "content": "via a replica"}]}
        async with httpx.AsyncClient(timeout=60) as agent:  # as an agent that reaches the replica would
            answer = await agent.post(
                cluster.data_urls[0] + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
            )
            refused = await agent.post(
                cluster.data_urls[1] + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-wrong"}
            )
        await training
        await trainer.aclose()
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "from the trainer"
        assert refused.status_code == 401 and "invalid API key" in refused.text  # the control plane's hub checked
        records = await sb.model_service.trajectory(sb.id)
        assert [(r.request["messages"][0]["content"], r.status) for r in records] == [("via a replica", "answered")]


async def test_a_replica_whose_control_plane_is_away_says_so_to_the_agent(redis_server: RedisProcess) -> None:
    alone = start_cluster(redis_server, 1)
    try:
        alone.control.stop()
        async with httpx.AsyncClient(timeout=30) as agent:
            answer = await agent.post(
                alone.data_urls[0] + "/v1/chat/completions", json={}, headers={"Authorization": "Bearer k"}
            )
        assert answer.status_code == 502
        assert f"could not reach the control plane at {alone.control.url}" in answer.json()["error"]["message"]
    finally:
        alone.stop()
