"""Trainer mode end to end: the official openai client inside a process sandbox, answered by the test."""

from __future__ import annotations

import asyncio
import json

import pytest

from rock_envs.sandbox import Sandbox
from rock_envs.sandbox.model_service import ModelCall, call_infra_error
from tests.sandbox.model_service.agents import failing_call_agent, run_with_answers, script

pytestmark = pytest.mark.anyio

CLIENT = """
import json, os, openai
client = openai.OpenAI(max_retries=0)
out = {"base_url": os.environ["OPENAI_BASE_URL"]}
r = client.chat.completions.create(model="policy", messages=[{"role": "user", "content": "one"}])
out["chat"] = r.choices[0].message.content
out["usage"] = r.usage.total_tokens if r.usage else None
s = client.chat.completions.create(model="policy", messages=[{"role": "user", "content": "two"}], stream=True,
                                   stream_options={"include_usage": True})
out["stream"] = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
c = client.completions.create(model="policy", prompt="three")
out["completion"] = c.choices[0].text
cs = client.completions.create(model="policy", prompt="four", stream=True)
out["completion_stream"] = "".join(ch.choices[0].text for ch in cs if ch.choices)
print(json.dumps(out))
"""


async def echo(call: ModelCall) -> None:
    last = call.messages[-1]["content"] if call.messages else call.request["prompt"]
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    await call.respond(f"answer to {last}", usage=usage if last == "one" else None)


async def test_openai_client_in_sandbox_gets_the_trainers_answers(make_config) -> None:  # type: ignore[no-untyped-def]
    async with Sandbox(make_config()) as sb:
        result = await run_with_answers(sb, await script(sb, "agent.py", CLIENT), echo)
        assert result.exit_code == 0, result.stderr
        out = json.loads(result.output)
        assert out["base_url"].startswith("http://127.0.0.1:") and out["base_url"].endswith("/v1")
        assert out["chat"] == "answer to one" and out["usage"] == 7
        assert out["stream"] == "answer to two"
        assert out["completion"] == "answer to three" and out["completion_stream"] == "answer to four"
        records = await sb.model_service.trajectory()
        assert [r.index for r in records] == [0, 1, 2, 3]
        assert [r.endpoint for r in records] == ["chat.completions"] * 2 + ["completions"] * 2
        assert [r.stream for r in records] == [False, True, False, True]
        assert all(r.status == "answered" and r.sandbox_id == sb.id for r in records)
        assert records[0].usage == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        assert records[1].response["choices"][0]["message"]["content"] == "answer to two"  # type: ignore[index]
        lines = (await sb.model_service.trajectory_jsonl()).splitlines()
        assert [json.loads(line)["call_id"] for line in lines] == [r.call_id for r in records]


async def test_a_whole_completion_object_is_passed_through(make_config) -> None:  # type: ignore[no-untyped-def]
    agent = (
        "import openai; r = openai.OpenAI(max_retries=0).chat.completions.create(model='m', "
        "messages=[{'role': 'user', 'content': 'x'}]); print(r.id, r.choices[0].finish_reason, "
        "r.choices[0].message.content, r.usage.completion_tokens)"
    )
    completion = {
        "id": "chatcmpl-fixed",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 9, "total_tokens": 10},
    }

    async def answer(call: ModelCall) -> None:
        await call.respond(completion)

    async with Sandbox(make_config()) as sb:
        result = await run_with_answers(sb, await script(sb, "a.py", agent), answer)
        assert result.output.split() == ["chatcmpl-fixed", "length", "whole", "9"], result.stderr
        (record,) = await sb.model_service.trajectory()
        assert record.usage == completion["usage"] and record.response["id"] == "chatcmpl-fixed"  # type: ignore[index]


async def test_nobody_answering_gives_the_agent_a_clear_timeout(make_config) -> None:  # type: ignore[no-untyped-def]
    agent = failing_call_agent("APIStatusError", "message")
    async with Sandbox(make_config(model_service={"mode": "trainer", "timeout": 0.5})) as sb:
        result = await run_with_answers(sb, await script(sb, "a.py", agent), None)
        assert result.output.startswith("504 nobody answered this call within 0.5 s"), (result.output, result.stderr)
        (record,) = await sb.model_service.trajectory()
        assert record.status == "timeout" and record.error["code"] == "trainer_timeout"  # type: ignore[index]
        assert call_infra_error(record) == {
            "phase": "model",
            "type": "timeout",
            "message": "call 0 (chat.completions): " + record.error["message"],  # type: ignore[index]
        }


async def test_the_trainer_can_fail_a_call(make_config) -> None:  # type: ignore[no-untyped-def]
    agent = failing_call_agent("InternalServerError", "message")

    async def fail(call: ModelCall) -> None:
        await call.fail("policy crashed")

    async with Sandbox(make_config()) as sb:
        result = await run_with_answers(sb, await script(sb, "a.py", agent), fail)
        assert result.output.strip() == "500 policy crashed", result.stderr
        (record,) = await sb.model_service.trajectory()
        assert record.status == "trainer_error"


CONCURRENT = """
import json, openai
from concurrent.futures import ThreadPoolExecutor
client = openai.OpenAI(max_retries=0)
ask = lambda i: client.chat.completions.create(model="p", messages=[{"role": "user", "content": f"q{i}"}])
with ThreadPoolExecutor(16) as pool:
    print(json.dumps([r.choices[0].message.content for r in pool.map(ask, range(16))]))
"""


async def test_answers_given_together_go_together_and_each_lands_or_fails_alone(make_config, mode) -> None:  # type: ignore[no-untyped-def]
    from rock_envs.sandbox.errors import CallNotFoundError, InvalidRequestError

    async with Sandbox(make_config()) as sb:
        service = sb.model_service
        run = asyncio.ensure_future(sb.arun(await script(sb, "agent.py", CONCURRENT), timeout=120))
        calls: list[ModelCall] = []
        while len(calls) < 16:
            calls += await service.next_calls(timeout=30)
        batches: list[int] = []
        if mode == "server":  # a spy on the one request per batch (the real route answers it)
            send = service._send_answers

            async def counted(items):  # type: ignore[no-untyped-def]
                batches.append(len(items))
                return await send(items)

            service._send_answers = counted  # type: ignore[method-assign]
        bad, good = calls[0], calls[1:]
        answers = [c.respond(f"a{c.messages[-1]['content']}") for c in good]
        results = await asyncio.gather(bad.respond({"choices": "not a list"}), *answers, return_exceptions=True)
        assert isinstance(results[0], InvalidRequestError) and results[1:] == [None] * 15
        with pytest.raises(CallNotFoundError):
            await good[0].respond("twice")
        await bad.respond(f"a{bad.messages[-1]['content']}")  # the bad answer left its call waiting
        result = await run
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.output) == [f"aq{i}" for i in range(16)]
        if mode == "server":
            assert sum(batches) == 18 and len(batches) < 16, batches  # 16 answers at once: a few requests
