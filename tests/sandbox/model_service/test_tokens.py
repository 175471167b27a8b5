"""Exact tokens: the trainer's token ids and logprobs, the proxy asking a vLLM-style upstream for them,
and a trajectory as one token sequence with a loss mask and the drift flag."""

from __future__ import annotations

import json

import pytest

from rock_envs.sandbox import InvalidRequestError, Sandbox
from rock_envs.sandbox.model_service import ModelCall
from tests.sandbox.model_service.agents import run_with_answers, script
from tests.sandbox.model_service.upstream_stub import logprob, render

pytestmark = pytest.mark.anyio

TWO_TURNS = """
import json, sys, openai
client, out = openai.OpenAI(max_retries=0), []
history = [{"role": "user", "content": "first"}]
r = client.chat.completions.create(model="policy", messages=history, temperature=0.7, max_tokens=64, seed=3)
out.append(r.model_dump())
said = r.choices[0].message.content
history += [{"role": "assistant", "content": said if sys.argv[1] == "keep" else said.upper()},
            {"role": "user", "content": "second"}]
s = client.chat.completions.create(model="policy", messages=history, stream=True)
out.append("".join(c.choices[0].delta.content or "" for c in s if c.choices))
print(json.dumps(out))
"""


def toks(text: str) -> list[int]:
    return list(text.encode())


async def test_the_trainers_tokens_are_recorded_and_never_sent(make_config) -> None:  # type: ignore[no-untyped-def]
    async def answer(call: ModelCall) -> None:
        prompt = toks(render(call.messages))
        text = "move " + call.messages[-1]["content"]
        sampled = toks(text + "</assistant>")
        with pytest.raises(InvalidRequestError, match="one logprob per sampled token"):
            await call.respond(text, token_ids=sampled, logprobs=[-1.0])
        await call.respond(text, token_ids=sampled, logprobs=[-0.5] * len(sampled), prompt_token_ids=prompt)

    async with Sandbox(make_config()) as sb:
        result = await run_with_answers(sb, await script(sb, "agent.py", TWO_TURNS) + " keep", answer)
        first, streamed = json.loads(result.output or "null") or [None, None]
        assert first is not None, result.stderr
        assert first["choices"][0]["message"]["content"] == "move first" and streamed == "move second"
        assert "token_ids" not in json.dumps(first) and first["choices"][0]["logprobs"] is None
        assert first["usage"]["completion_tokens"] == len(toks("move first</assistant>"))  # counted from the tokens
        records = await sb.model_service.trajectory()
        assert records[0].sampling == {"temperature": 0.7, "max_tokens": 64, "seed": 3}
        assert records[0].model == "policy" and records[0].finish_reason == "stop"
        assert records[0].completion_token_ids == toks("move first</assistant>")
        assert records[0].completion_logprobs == [-0.5] * len(toks("move first</assistant>"))
        assert records[1].prompt_token_ids == toks(
            render(
                [
                    {"role": "user", "content": "first"},
                    {"role": "assistant", "content": "move first"},
                    {"role": "user", "content": "second"},
                ]
            )
        )
        seq = await sb.model_service.trajectory(as_tokens=True)
        assert seq.drift is None and [t.index for t in seq.turns] == [0, 1]
        assert seq.token_ids == records[1].prompt_token_ids + records[1].completion_token_ids  # type: ignore[operator]
        sampled = [seq.token_ids[i] for i, m in enumerate(seq.loss_mask) if m == 1]
        assert sampled == records[0].completion_token_ids + records[1].completion_token_ids  # type: ignore[operator]
        assert [v for v, m in zip(seq.logprobs, seq.loss_mask) if m == 0] == [None] * seq.loss_mask.count(0)


async def test_the_proxy_records_the_upstreams_tokens_without_changing_the_answer(make_config, upstream) -> None:  # type: ignore[no-untyped-def]
    async with Sandbox(make_config(model_service={"mode": "proxy", "upstream_url": upstream.url})) as sb:
        result = await run_with_answers(sb, await script(sb, "agent.py", TWO_TURNS) + " keep", None)
        first, streamed = json.loads(result.output or "null") or [None, None]
        assert first is not None, result.stderr
        assert first["choices"][0]["message"]["content"] == "upstream: first" and streamed == "upstream: second"
        assert "token_id" not in json.dumps(first) and first["choices"][0]["logprobs"] is None
        asked = [s["body"] for s in upstream.seen]
        assert all(b["return_token_ids"] and b["logprobs"] and b["return_tokens_as_token_ids"] for b in asked)
        records = await sb.model_service.trajectory()
        for record, said in zip(records, ["upstream: first", "upstream: second"]):
            assert record.status == "answered" and record.completion_token_ids == toks(said + "</assistant>")
            assert record.completion_logprobs == [logprob(i) for i in range(len(toks(said + "</assistant>")))]
            assert "token_ids" not in json.dumps(record.response)  # the record's response is what the agent got
        assert records[1].stream and records[1].prompt_token_ids == toks(render(asked[1]["messages"]))
        seq = await sb.model_service.trajectory(as_tokens=True)
        assert (
            seq.drift is None
            and len(seq.turns) == 2
            and sum(seq.loss_mask) == sum(len(r.completion_token_ids or []) for r in records)
        )


async def test_a_rewritten_history_is_flagged_as_drift(make_config, upstream) -> None:  # type: ignore[no-untyped-def]
    async with Sandbox(make_config(model_service={"mode": "proxy", "upstream_url": upstream.url})) as sb:
        result = await run_with_answers(sb, await script(sb, "agent.py", TWO_TURNS) + " rewrite", None)
        assert result.exit_code == 0, result.stderr
        seq = await sb.model_service.trajectory(as_tokens=True)
        assert seq.drift is not None and seq.drift.index == 1 and seq.drift.reason == "prompt does not extend"
        prefix = toks(render([{"role": "user", "content": "first"}]) + "upstream: first")
        assert seq.drift.position == len(toks("<user>first</user><assistant>"))  # where "U" replaced "u"
        assert [t.index for t in seq.turns] == [0] and seq.token_ids == prefix + toks("</assistant>")


async def test_an_agent_asking_for_logprobs_gets_them_and_completions_are_captured(make_config, upstream) -> None:  # type: ignore[no-untyped-def]
    agent = """
import json, openai
client = openai.OpenAI(max_retries=0)
r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], logprobs=True)
c = client.completions.create(model="m", prompt="go")
print(json.dumps([[e.token for e in r.choices[0].logprobs.content], c.choices[0].text, c.model_dump()]))
"""
    async with Sandbox(make_config(model_service={"mode": "proxy", "upstream_url": upstream.url})) as sb:
        result = await run_with_answers(sb, await script(sb, "agent.py", agent), None)
        out = json.loads(result.output or "null")
        assert out is not None, result.stderr
        assert "".join(out[0]) == "upstream: hi</assistant>"  # real token strings, not token_id:N
        assert out[1] == "upstream: go" and "token_ids" not in json.dumps(out[2])
        chat, completion = await sb.model_service.trajectory()
        assert chat.completion_token_ids == toks("upstream: hi</assistant>") and chat.sampling == {"logprobs": True}
        assert completion.prompt_token_ids == toks("go") and completion.completion_token_ids == toks("upstream: go")


async def test_without_capture_the_upstream_gets_the_request_as_sent(make_config, upstream) -> None:  # type: ignore[no-untyped-def]
    spec = {"mode": "proxy", "upstream_url": upstream.url, "capture_tokens": False}
    async with Sandbox(make_config(model_service=spec)) as sb:
        result = await run_with_answers(sb, await script(sb, "agent.py", TWO_TURNS) + " keep", None)
        assert result.exit_code == 0, result.stderr
        assert not any("return_token_ids" in s["body"] for s in upstream.seen)
        seq = await sb.model_service.trajectory(as_tokens=True)
        assert seq.turns == [] and seq.drift is not None and seq.drift.reason == "no token ids"
