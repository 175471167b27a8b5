"""The OpenAI Responses API (``POST /v1/responses``), as far as the ModelService needs it.

Written from the public API reference: a request has ``input`` (text, or a list of message,
``function_call`` and ``function_call_output`` items) and ``instructions``; a response is an
``object: "response"`` whose ``output`` holds ``message`` items (``output_text`` parts) and
``function_call`` items; streaming sends typed events (``event: response.output_text.delta`` ...)
ending with ``response.completed``. The trainer answers in chat terms; :func:`from_chat` turns a
``chat.completion`` into a response, :func:`to_chat_messages` a request's input into chat messages.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Iterator

from .openai_format import OpenAIError, SSEData

ROLES = {"system", "developer", "user", "assistant"}


def check_request(req: dict[str, Any]) -> dict[str, Any]:
    """``req`` (a JSON object with a ``model``), checked as a Responses request; 400 naming the field."""
    given = req.get("input")
    if not (isinstance(given, str) or isinstance(given, list) and given):
        raise OpenAIError(400, "`input` is required: a string or a non-empty list of input items.", param="input")
    if isinstance(given, list):
        for i, item in enumerate(given):
            kind = item.get("type", "message") if isinstance(item, dict) else None
            if kind == "message" and (not isinstance(item, dict) or item.get("role") not in ROLES):
                raise OpenAIError(
                    400,
                    f"`input[{i}]` must be an item whose `role` is one of {', '.join(sorted(ROLES))} (or a "
                    f"`function_call` / `function_call_output` item); got {item!r:.200}.",
                    param=f"input[{i}]",
                )
    if "tools" in req and not isinstance(req["tools"], list):
        raise OpenAIError(400, "`tools` must be a list of tool objects.", param="tools")
    return req


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return ""


def to_chat_messages(req: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's instructions and input as chat messages (tool calls and their outputs included)."""
    out: list[dict[str, Any]] = []
    if req.get("instructions"):
        out.append({"role": "system", "content": str(req["instructions"])})
    given = req.get("input")
    if isinstance(given, str):
        return out + [{"role": "user", "content": given}]
    for item in given or []:
        kind = item.get("type", "message")
        if kind == "message":
            out.append({"role": item["role"], "content": _text(item.get("content"))})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""},
            }
            if out and out[-1]["role"] == "assistant" and "tool_calls" in out[-1]:
                out[-1]["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": _text(item.get("output"))})
    return out


def chat_tools(req: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's function tools in chat-completions shape."""
    return [
        {"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters") if k in t}}
        for t in req.get("tools") or []
        if isinstance(t, dict) and t.get("type") == "function"
    ]


def usage_of(chat_usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not chat_usage:
        return None
    prompt, completion = int(chat_usage.get("prompt_tokens") or 0), int(chat_usage.get("completion_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def from_chat(req: dict[str, Any], chat: dict[str, Any]) -> dict[str, Any]:
    """A whole ``response`` object carrying the first choice of ``chat`` (a ``chat.completion``)."""
    choice = chat["choices"][0]
    message = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    if message.get("content"):
        output.append(
            {
                "type": "message",
                "id": "msg_" + secrets.token_hex(12),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": message["content"], "annotations": []}],
            }
        )
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        output.append(
            {
                "type": "function_call",
                "id": "fc_" + secrets.token_hex(12),
                "call_id": call.get("id") or "call_" + secrets.token_hex(8),
                "name": fn.get("name"),
                "arguments": fn.get("arguments") or "",
                "status": "completed",
            }
        )
    length = choice.get("finish_reason") == "length"
    return {
        "id": "resp_" + secrets.token_hex(12),
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if length else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if length else None,
        "error": None,
        "model": chat.get("model") or req.get("model"),
        "instructions": req.get("instructions"),
        "output": output,
        "parallel_tool_calls": bool(req.get("parallel_tool_calls", True)),
        "temperature": req.get("temperature"),
        "top_p": req.get("top_p"),
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": req.get("tools") or [],
        "metadata": req.get("metadata") or {},
        "text": {"format": {"type": "text"}},
        "usage": usage_of(chat.get("usage")),
    }


def finish_reason(response: dict[str, Any]) -> str:
    if any(i.get("type") == "function_call" for i in response.get("output") or []):
        return "tool_calls"
    return "length" if response.get("status") == "incomplete" else "stop"


def _event(seq: list[int], kind: str, **fields: Any) -> bytes:
    seq[0] += 1
    data = json.dumps({"type": kind, "sequence_number": seq[0], **fields})
    return f"event: {kind}\ndata: {data}\n\n".encode()


def stream_events(response: dict[str, Any], piece: int = 64) -> Iterator[bytes]:
    """The server-sent events that stream ``response`` (a whole response object)."""
    seq = [-1]
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    yield _event(seq, "response.created", response=started)
    yield _event(seq, "response.in_progress", response=started)
    for index, item in enumerate(response.get("output") or []):
        if item["type"] == "message":
            yield _event(
                seq,
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            for c, part in enumerate(item["content"]):
                where = {"item_id": item["id"], "output_index": index, "content_index": c}
                yield _event(seq, "response.content_part.added", **where, part={**part, "text": ""})
                text = part.get("text") or ""
                for i in range(0, len(text), piece):
                    yield _event(seq, "response.output_text.delta", **where, delta=text[i : i + piece], logprobs=[])
                yield _event(seq, "response.output_text.done", **where, text=text, logprobs=[])
                yield _event(seq, "response.content_part.done", **where, part=part)
        else:
            yield _event(
                seq,
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            where = {"item_id": item["id"], "output_index": index}
            if item.get("arguments"):
                yield _event(seq, "response.function_call_arguments.delta", **where, delta=item["arguments"])
            yield _event(
                seq,
                "response.function_call_arguments.done",
                **where,
                name=item.get("name"),
                arguments=item.get("arguments"),
            )
        yield _event(seq, "response.output_item.done", output_index=index, item=item)
    yield _event(
        seq, "response.completed" if response.get("status") == "completed" else "response.incomplete", response=response
    )


class StreamAssembler:
    """The whole response of an upstream's event stream: what its last ``response.*`` event carries."""

    def __init__(self) -> None:
        self.sse = SSEData()
        self.response: dict[str, Any] = {}

    def feed(self, data: bytes) -> None:
        for event in self.sse.feed(data):
            if isinstance(event.get("response"), dict):
                self.response = event["response"]

    def result(self) -> dict[str, Any]:
        return self.response
