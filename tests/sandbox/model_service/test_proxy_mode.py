"""Proxy mode: calls forwarded to an OpenAI-compatible upstream on 127.0.0.1, recorded with usage."""

from __future__ import annotations

import json

import pytest

from rock_envs.sandbox import Sandbox
from rock_envs.sandbox.model_service import trajectory_infra_error
from tests.sandbox.model_service.agents import failing_call_agent, run_with_answers, script
from tests.support.server import free_port

pytestmark = pytest.mark.anyio

CLIENT = """
import json, openai
client = openai.OpenAI(max_retries=0)
out = {}
out["chat"] = client.chat.completions.create(model="up", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
s = client.chat.completions.create(model="up", messages=[{"role": "user", "content": "streamed"}], stream=True)
out["stream"] = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
out["completion"] = client.completions.create(model="up", prompt="p").choices[0].text
try:
    client.chat.completions.create(model="fail", messages=[{"role": "user", "content": "x"}])
except openai.BadRequestError as exc:
    out["error"] = [exc.status_code, exc.body["message"]]
print(json.dumps(out))
"""


async def test_openai_client_through_the_proxy(make_config, upstream) -> None:  # type: ignore[no-untyped-def]
    spec = {"mode": "proxy", "upstream_url": upstream.url, "upstream_api_key": "sk-upstream"}
    async with Sandbox(make_config(model_service=spec)) as sb:
        result = await run_with_answers(sb, await script(sb, "agent.py", CLIENT), None)
        assert result.exit_code == 0, result.stderr
        out = json.loads(result.output)
        assert out == {
            "chat": "upstream: hi",
            "stream": "upstream: streamed",
            "completion": "upstream: p",
            "error": [400, "upstream says no"],
        }
        assert {s["auth"] for s in upstream.seen} == {"Bearer sk-upstream"}  # the upstream key, never the sandbox's
        records = await sb.model_service.trajectory()
        assert [r.status for r in records] == ["answered", "answered", "answered", "bad_request"]
        assert records[1].response["choices"][0]["message"]["content"] == "upstream: streamed"  # type: ignore[index]
        assert records[0].usage == records[1].usage == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        assert records[3].error["message"] == "upstream says no"  # type: ignore[index]
        assert trajectory_infra_error(records) is None  # the upstream refused the agent's request: the agent's fault


async def test_an_unreachable_upstream_is_a_502(make_config) -> None:  # type: ignore[no-untyped-def]
    agent = failing_call_agent("APIStatusError", "code")
    spec = {"mode": "proxy", "upstream_url": f"http://127.0.0.1:{free_port()}/v1"}
    async with Sandbox(make_config(model_service=spec)) as sb:
        result = await run_with_answers(sb, await script(sb, "a.py", agent), None)
        assert result.output.split() == ["502", "upstream_unreachable"], result.stderr
        (record,) = await sb.model_service.trajectory()
        assert record.status == "upstream_error"
        found = trajectory_infra_error([record])
        assert found is not None and found["phase"] == "model" and found["type"] == "upstream_error"
