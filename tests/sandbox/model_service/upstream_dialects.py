"""The Responses and Messages half of the test upstream (upstream_stub.py): answers written by hand
from the public API references, independent of rock-envs' own converters.

Text asks are echoed (``upstream: <last text>``); a request offering tools gets a call of the first
tool with ``{"dir": "up"}`` (a ``function_call`` item, a ``tool_use`` block) unless its last input
is a tool's result.
"""

from __future__ import annotations

import json
from typing import Any, Iterator


def _last_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text") or p.get("output") or "") for p in content if isinstance(p, dict))


def responses(body: dict[str, Any]) -> dict[str, Any]:
    given = body["input"]
    last = given if isinstance(given, str) else given[-1]
    tool_result = isinstance(last, dict) and last.get("type") == "function_call_output"
    if body.get("tools") and not tool_result:
        name = body["tools"][0]["name"]
        output = [
            {
                "type": "function_call",
                "id": "fc_up",
                "call_id": "call_up",
                "name": name,
                "arguments": '{"dir": "up"}',
                "status": "completed",
            }
        ]
    else:
        text = "upstream: " + (
            last if isinstance(last, str) else str(last.get("output") or _last_text(last.get("content")))
        )
        output = [
            {
                "type": "message",
                "id": "msg_up",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ]
    return {
        "id": "resp_up",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": body["model"],
        "output": output,
        "usage": {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10},
    }


def responses_events(done: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "response.created", {"response": {**done, "status": "in_progress", "output": []}}
    for index, item in enumerate(done["output"]):
        yield "response.output_item.added", {"output_index": index, "item": item}
        if item["type"] == "message":
            text = item["content"][0]["text"]
            for i in range(0, len(text), 5):
                yield (
                    "response.output_text.delta",
                    {"item_id": item["id"], "output_index": index, "content_index": 0, "delta": text[i : i + 5]},
                )
        yield "response.output_item.done", {"output_index": index, "item": item}
    yield "response.completed", {"response": done}


def messages(body: dict[str, Any]) -> dict[str, Any]:
    last = body["messages"][-1]["content"]
    blocks = last if isinstance(last, list) else [{"type": "text", "text": last}]
    results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
    if body.get("tools") and not results:
        content = [{"type": "tool_use", "id": "toolu_up", "name": body["tools"][0]["name"], "input": {"dir": "up"}}]
        stop = "tool_use"
    else:
        said = _last_text(results[0]["content"]) if results else _last_text(blocks)
        content, stop = [{"type": "text", "text": "upstream: " + said}], "end_turn"
    return {
        "id": "msg_up",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 7, "output_tokens": 3},
    }


def messages_events(done: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "message_start", {"message": {**done, "content": [], "stop_reason": None}}
    for index, block in enumerate(done["content"]):
        if block["type"] == "text":
            yield "content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}}
            for i in range(0, len(block["text"]), 5):
                yield (
                    "content_block_delta",
                    {"index": index, "delta": {"type": "text_delta", "text": block["text"][i : i + 5]}},
                )
        else:
            yield "content_block_start", {"index": index, "content_block": {**block, "input": {}}}
            raw = json.dumps(block["input"])
            for i in range(0, len(raw), 4):
                yield (
                    "content_block_delta",
                    {"index": index, "delta": {"type": "input_json_delta", "partial_json": raw[i : i + 4]}},
                )
        yield "content_block_stop", {"index": index}
    yield (
        "message_delta",
        {"delta": {"stop_reason": done["stop_reason"], "stop_sequence": None}, "usage": {"output_tokens": 3}},
    )
    yield "message_stop", {}
