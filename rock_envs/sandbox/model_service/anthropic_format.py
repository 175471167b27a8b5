"""The Anthropic Messages API (``POST /v1/messages``), as far as the ModelService needs it.

Written from the public API reference: a request has ``max_tokens``, ``messages`` (``user`` and
``assistant`` turns whose content is text or ``text``, ``tool_use`` and ``tool_result`` blocks) and
``system``; an answer is a ``type: "message"`` with content blocks and a ``stop_reason``; streaming
sends ``message_start``, ``content_block_start/delta/stop``, ``message_delta`` and ``message_stop``
events; errors are ``{"type": "error", "error": {"type", "message"}}``. The trainer answers in chat
terms; :func:`from_chat` turns a ``chat.completion`` into a message.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Iterator

from .openai_format import OpenAIError, SSEData

STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
FINISH = {v: k for k, v in STOP.items()} | {"stop_sequence": "stop"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
}


def check_request(req: dict[str, Any]) -> dict[str, Any]:
    """``req`` (a JSON object with a ``model``), checked as a Messages request; 400 naming the field."""
    if not isinstance(req.get("max_tokens"), int) or req["max_tokens"] < 1:
        raise OpenAIError(400, "`max_tokens` is required: a positive integer.", param="max_tokens")
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise OpenAIError(400, "`messages` is required: a non-empty list of {role, content}.", param="messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise OpenAIError(
                400, f"`messages[{i}].role` must be 'user' or 'assistant'; got {msg!r:.200}.", param=f"messages[{i}]"
            )
        if not isinstance(msg.get("content"), (str, list)):
            raise OpenAIError(
                400, f"`messages[{i}].content` must be a string or a list of blocks.", param=f"messages[{i}].content"
            )
    return req


def error_body(exc: OpenAIError) -> dict[str, Any]:
    kind = ERROR_TYPES.get(exc.status, "api_error" if exc.status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": exc.message}}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(b.get("text") or "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def to_chat_messages(req: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's system prompt and messages as chat messages (tool uses and results included)."""
    out: list[dict[str, Any]] = []
    if req.get("system"):
        out.append({"role": "system", "content": _text(req["system"])})
    for msg in req.get("messages") or []:
        blocks = msg["content"] if isinstance(msg["content"], list) else [{"type": "text", "text": msg["content"]}]
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                out.append(
                    {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": _text(block.get("content"))}
                )
        calls = [
            {
                "id": b.get("id"),
                "type": "function",
                "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})},
            }
            for b in blocks
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]
        text = _text(blocks)
        if text or calls or not any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks):
            entry: dict[str, Any] = {"role": msg["role"], "content": text}
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
    return out


def chat_tools(req: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's tools in chat-completions shape."""
    return [
        {
            "type": "function",
            "function": {
                "name": t.get("name"),
                "description": t.get("description"),
                "parameters": t.get("input_schema"),
            },
        }
        for t in req.get("tools") or []
        if isinstance(t, dict) and "name" in t
    ]


def from_chat(req: dict[str, Any], chat: dict[str, Any]) -> dict[str, Any]:
    """A whole ``message`` carrying the first choice of ``chat`` (a ``chat.completion``)."""
    choice = chat["choices"][0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        try:
            arguments = json.loads(fn.get("arguments") or "{}")
        except ValueError as exc:
            raise ValueError(f"a tool call's `arguments` must be a JSON object for a Messages call ({exc}).") from None
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "toolu_" + secrets.token_hex(12),
                "name": fn.get("name"),
                "input": arguments,
            }
        )
    usage = chat.get("usage") or {}
    return {
        "id": "msg_" + secrets.token_hex(12),
        "type": "message",
        "role": "assistant",
        "model": chat.get("model") or req.get("model"),
        "content": content,
        "stop_reason": STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": {
            "input_tokens": int(usage.get("prompt_tokens") or 0),
            "output_tokens": int(usage.get("completion_tokens") or 0),
        },
    }


def finish_reason(message: dict[str, Any]) -> str:
    return FINISH.get(str(message.get("stop_reason")), "stop")


def _event(kind: str, **fields: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


def stream_events(message: dict[str, Any], piece: int = 64) -> Iterator[bytes]:
    """The server-sent events that stream ``message`` (a whole message)."""
    usage = message.get("usage") or {}
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 0}}
    yield _event("message_start", message=start)
    for index, block in enumerate(message.get("content") or []):
        if block["type"] == "text":
            yield _event("content_block_start", index=index, content_block={"type": "text", "text": ""})
            text = block.get("text") or ""
            for i in range(0, len(text), piece):
                yield _event(
                    "content_block_delta", index=index, delta={"type": "text_delta", "text": text[i : i + piece]}
                )
        else:
            yield _event("content_block_start", index=index, content_block={**block, "input": {}})
            partial = json.dumps(block.get("input") or {})
            yield _event(
                "content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": partial}
            )
        yield _event("content_block_stop", index=index)
    delta = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    yield _event("message_delta", delta=delta, usage={"output_tokens": usage.get("output_tokens", 0)})
    yield _event("message_stop")


class StreamAssembler:
    """The whole message of an upstream's Messages event stream (for the recorded trajectory)."""

    def __init__(self) -> None:
        self.sse = SSEData()
        self.message: dict[str, Any] = {}
        self.blocks: dict[int, dict[str, Any]] = {}
        self.partial: dict[int, str] = {}

    def feed(self, data: bytes) -> None:
        for event in self.sse.feed(data):
            self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        kind, index = event.get("type"), int(event.get("index") or 0)
        if kind == "message_start":
            self.message = dict(event.get("message") or {})
        elif kind == "content_block_start":
            self.blocks[index] = dict(event.get("content_block") or {})
        elif kind == "content_block_delta":
            delta, block = event.get("delta") or {}, self.blocks.setdefault(index, {"type": "text", "text": ""})
            if delta.get("type") == "text_delta":
                block["text"] = str(block.get("text") or "") + str(delta.get("text") or "")
            elif delta.get("type") == "input_json_delta":
                self.partial[index] = self.partial.get(index, "") + str(delta.get("partial_json") or "")
        elif kind == "message_delta":
            self.message.update(event.get("delta") or {})
            self.message["usage"] = {**(self.message.get("usage") or {}), **(event.get("usage") or {})}

    def result(self) -> dict[str, Any]:
        for index, text in self.partial.items():
            try:
                self.blocks[index]["input"] = json.loads(text or "{}")
            except ValueError:
                self.blocks[index]["input"] = text
        return {**self.message, "content": [self.blocks[i] for i in sorted(self.blocks)]}
