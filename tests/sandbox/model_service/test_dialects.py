"""The Responses and Anthropic Messages dialects beside chat completions, streaming and not, with tool
calls, through the official `openai` and `anthropic` clients running unchanged inside sandboxes."""

from __future__ import annotations

import contextlib
import json

import pytest

from rock_envs.sandbox import Sandbox
from rock_envs.sandbox.model_service import ModelCall
from tests.sandbox.model_service.agents import run_with_answers, script
from tests.sandbox.model_service.upstream_stub import Upstream

pytestmark = pytest.mark.anyio

AGENT = """
import json, anthropic, openai
oc, ac, out = openai.OpenAI(max_retries=0), anthropic.Anthropic(max_retries=0), {}
schema = {"type": "object", "properties": {"dir": {"type": "string"}}, "required": ["dir"]}
chat_tools = [{"type": "function", "function": {"name": "move", "description": "push", "parameters": schema}}]
flat_tools = [{"type": "function", "name": "move", "description": "push", "parameters": schema}]
claude_tools = [{"name": "move", "description": "push", "input_schema": schema}]

ask = [{"role": "user", "content": "chat"}]
m = oc.chat.completions.create(model="p", messages=ask, tools=chat_tools).choices[0]
call = m.message.tool_calls[0]
out["chat_tool"] = [call.function.name, json.loads(call.function.arguments), m.finish_reason]
ask += [m.message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "moved"}]
out["chat_after_tool"] = oc.chat.completions.create(model="p", messages=ask, tools=chat_tools).choices[0].message.content
args, names = "", []
for c in oc.chat.completions.create(model="p", messages=ask[:1], tools=chat_tools, stream=True):
    for d in (c.choices[0].delta.tool_calls or []) if c.choices else []:
        args += d.function.arguments or ""
        names += [d.function.name] if d.function.name else []
out["chat_stream_tool"] = [names, json.loads(args)]

r = oc.responses.create(model="p", input="responses", tools=flat_tools)
fc = [i for i in r.output if i.type == "function_call"][0]
out["responses_tool"] = [fc.name, json.loads(fc.arguments)]
items = [{"role": "user", "content": "responses"}, {"type": "function_call", "call_id": fc.call_id, "name": fc.name,
         "arguments": fc.arguments}, {"type": "function_call_output", "call_id": fc.call_id, "output": "moved"}]
out["responses_after_tool"] = oc.responses.create(model="p", input=items, tools=flat_tools).output_text
events = list(oc.responses.create(model="p", instructions="be brief", input="responses stream", stream=True))
out["responses_stream"] = "".join(e.delta for e in events if e.type == "response.output_text.delta")
out["responses_stream_last"] = events[-1].type
with oc.responses.stream(model="p", input="responses helper", tools=flat_tools) as s:
    final = s.get_final_response()
out["responses_helper_tool"] = [i.name for i in final.output if i.type == "function_call"]

msg = ac.messages.create(model="p", max_tokens=64, messages=[{"role": "user", "content": "messages"}], tools=claude_tools)
use = [b for b in msg.content if b.type == "tool_use"][0]
out["messages_tool"] = [use.name, use.input, msg.stop_reason]
turns = [{"role": "user", "content": "messages"}, {"role": "assistant", "content": [{"type": "tool_use", "id": use.id,
         "name": use.name, "input": use.input}]}, {"role": "user", "content": [{"type": "tool_result",
         "tool_use_id": use.id, "content": "moved"}]}]
out["messages_after_tool"] = ac.messages.create(model="p", max_tokens=64, messages=turns, tools=claude_tools).content[0].text
with ac.messages.stream(model="p", max_tokens=64, system="be brief", messages=[{"role": "user", "content": "messages stream"}]) as s:
    out["messages_stream"] = "".join(s.text_stream)
with ac.messages.stream(model="p", max_tokens=64, messages=[{"role": "user", "content": "go"}], tools=claude_tools) as s:
    final = s.get_final_message()
out["messages_stream_tool"] = [[b.name, b.input] for b in final.content if b.type == "tool_use"] + [final.stop_reason]
try:
    ac.messages.create(model="p", messages=[{"role": "user", "content": "x"}], max_tokens=0)
except anthropic.BadRequestError as exc:
    out["messages_error"] = [exc.status_code, exc.body["error"]["type"]]
print(json.dumps(out))
"""


async def policy(call: ModelCall) -> None:
    """Call the first tool offered unless a tool's result came last; else echo the last text."""
    last = call.messages[-1]
    if last["role"] == "tool":
        await call.respond(f"done: {last['content']}")
    elif call.tools:
        fn = {"name": call.tools[0]["function"]["name"], "arguments": '{"dir": "up"}'}
        await call.respond(
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_t", "type": "function", "function": fn}]}
        )
    else:
        await call.respond(f"echo: {last['content']}")


def check(out: dict, say: str, after_tool: str) -> None:  # type: ignore[type-arg]
    up = {"dir": "up"}
    assert out["chat_tool"] == ["move", up, "tool_calls"]
    assert out["chat_after_tool"] == after_tool and out["chat_stream_tool"] == [["move"], up]
    assert out["responses_tool"] == ["move", up] and out["responses_after_tool"] == after_tool
    assert out["responses_stream"] == f"{say}responses stream" and out["responses_stream_last"] == "response.completed"
    assert out["responses_helper_tool"] == ["move"]
    assert out["messages_tool"] == ["move", up, "tool_use"] and out["messages_after_tool"] == after_tool
    assert out["messages_stream"] == f"{say}messages stream"
    assert out["messages_stream_tool"] == [["move", up], "tool_use"]
    assert out["messages_error"] == [400, "invalid_request_error"]


async def run_agent(sb: Sandbox, trainer: bool) -> dict:  # type: ignore[type-arg]
    result = await run_with_answers(sb, await script(sb, "agent.py", AGENT), policy if trainer else None)
    out = json.loads(result.output or "null")
    assert out is not None, result.stderr[-3000:]
    return out  # type: ignore[no-any-return]


async def test_every_dialect_and_tool_calls_answered_by_the_trainer(make_config) -> None:  # type: ignore[no-untyped-def]
    async with Sandbox(make_config()) as sb:
        check(await run_agent(sb, trainer=True), "echo: ", "done: moved")
        records = await sb.model_service.trajectory()
        kinds = [r.endpoint for r in records]
        assert kinds == ["chat.completions"] * 3 + ["responses"] * 4 + ["messages"] * 4  # the refused call is not one
        assert all(r.status == "answered" for r in records)
        tool, stop = "tool_calls", "stop"
        assert [r.finish_reason for r in records] == [tool, stop, tool] + [tool, stop, stop, tool] * 2
        responses_tool, messages_tool = records[3], records[7]
        assert responses_tool.request["tools"][0]["name"] == "move"
        assert [i["type"] for i in responses_tool.response["output"]] == ["function_call"]  # type: ignore[index]
        assert messages_tool.response["content"][0]["type"] == "tool_use"  # type: ignore[index]
        streamed = records[5]
        assert streamed.stream and streamed.response["output"][0]["content"][0]["text"] == "echo: responses stream"  # type: ignore[index]
        assert records[9].stream and records[9].response["content"][0]["text"] == "echo: messages stream"  # type: ignore[index]


async def test_every_dialect_and_tool_calls_through_the_proxy(make_config, upstream) -> None:  # type: ignore[no-untyped-def]
    spec = {"mode": "proxy", "upstream_url": upstream.url, "upstream_api_key": "sk-up"}
    async with Sandbox(make_config(model_service=spec)) as sb:
        check(await run_agent(sb, trainer=False), "upstream: ", "upstream: moved")
        assert {s["path"] for s in upstream.seen} == {"/v1/chat/completions", "/v1/responses", "/v1/messages"}
        assert {s["auth"] for s in upstream.seen} == {"Bearer sk-up"}
        records = await sb.model_service.trajectory()
        assert [r.status for r in records] == ["answered"] * 11
        assert records[5].response["status"] == "completed" and records[5].finish_reason == "stop"  # type: ignore[index]
        tool_stream = records[10]  # rebuilt from the upstream's events, the tool input parsed
        assert tool_stream.stream and tool_stream.response["content"] == [  # type: ignore[index]
            {"type": "tool_use", "id": "toolu_up", "name": "move", "input": {"dir": "up"}}
        ]
        assert tool_stream.finish_reason == "tool_calls"


@pytest.mark.docker
@pytest.mark.parametrize("answered_by", ["trainer", "proxy"])
async def test_the_clients_run_unchanged_in_a_docker_sandbox(  # type: ignore[no-untyped-def]
    make_config, image: str, answered_by: str
) -> None:
    """The official clients in a container, streaming and not, embedded and through the server."""
    async with contextlib.AsyncExitStack() as stack:
        service: str | dict = "trainer"  # type: ignore[type-arg]
        if answered_by == "proxy":
            upstream = Upstream()
            upstream.start()
            stack.callback(upstream.stop)
            service = {"mode": "proxy", "upstream_url": upstream.url}
        sb = await stack.enter_async_context(Sandbox(make_config(runtime="docker", image=image, model_service=service)))
        await sb.write_file("agent.py", AGENT)
        result = await run_with_answers(sb, "python3 agent.py", policy if answered_by == "trainer" else None)
        out = json.loads(result.output or "null")
        assert out is not None, result.stderr[-3000:]
        if answered_by == "trainer":
            check(out, "echo: ", "done: moved")
        else:
            check(out, "upstream: ", "upstream: moved")
        records = await sb.model_service.trajectory()
        assert [r.endpoint for r in records] == ["chat.completions"] * 3 + ["responses"] * 4 + ["messages"] * 4
        assert [r.stream for r in records] == [False, False, True] + [False, False, True, True] * 2
        assert all(r.status == "answered" for r in records)
