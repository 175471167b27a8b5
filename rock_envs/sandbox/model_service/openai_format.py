"""The OpenAI wire format, as far as the ModelService needs it: checks, completions, SSE chunks, errors.

Written from the public API reference (chat completions, legacy completions, streaming as server-sent
events ending with ``data: [DONE]``, errors as ``{"error": {"message", "type", "param", "code"}}``).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Iterator

from .models import Endpoint

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


class OpenAIError(Exception):
    """An error answered to the agent as an OpenAI-style body with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry: bool = False,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code, self.retry = (
            status,
            message,
            type_,
            param,
            code,
            retry,
        )

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def check_request(endpoint: Endpoint, body: bytes) -> dict[str, Any]:
    """The parsed request, or :class:`OpenAIError` (400) naming what is wrong."""
    req = parse(body)
    if endpoint == "chat.completions":
        check_messages(req)
    else:
        prompt = req.get("prompt")
        if not (
            isinstance(prompt, str) or isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str)
        ):
            raise OpenAIError(400, "`prompt` is required: a string (or a list of exactly one string).", param="prompt")
    return req


def parse(body: bytes) -> dict[str, Any]:
    """The body as a JSON object with a ``model`` (what every dialect's request has), else a 400."""
    try:
        req = json.loads(body or b"null")
    except ValueError as exc:
        raise OpenAIError(400, f"the request body is not valid JSON ({exc}); send a JSON object.") from None
    if not isinstance(req, dict):
        raise OpenAIError(400, f"the request body must be a JSON object, got {type(req).__name__}.")
    if not isinstance(req.get("model"), str) or not req["model"]:
        raise OpenAIError(400, "`model` is required and must be a non-empty string.", param="model")
    if "stream" in req and not isinstance(req["stream"], bool):
        raise OpenAIError(400, f"`stream` must be true or false, got {req['stream']!r}.", param="stream")
    if req.get("n", 1) not in (1, None):
        raise OpenAIError(400, f"`n` must be 1 here (one answer per call), got {req['n']!r}.", param="n")
    return req


def check_messages(req: dict[str, Any]) -> None:
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise OpenAIError(400, "`messages` is required: a non-empty list of {role, content} objects.", param="messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES:
            raise OpenAIError(
                400,
                f"`messages[{i}]` must be an object whose `role` is one of "
                f"{', '.join(sorted(ROLES))}; got {msg!r:.200}.",
                param=f"messages[{i}]",
            )
        content = msg.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise OpenAIError(
                400,
                f"`messages[{i}].content` must be a string, a list of parts or null, got {type(content).__name__}.",
                param=f"messages[{i}].content",
            )


def new_id(endpoint: Endpoint) -> str:
    return ("chatcmpl-" if endpoint == "chat.completions" else "cmpl-") + secrets.token_hex(12)


def completion(
    endpoint: Endpoint, request: dict[str, Any], answer: str | dict[str, Any], usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A whole ``chat.completion`` / ``text_completion`` from the trainer's text, an assistant message
    (``{"role": "assistant", "content": ..., "tool_calls": [...]}``), or its dict completed."""
    if isinstance(answer, dict) and "choices" not in answer and answer.get("role") == "assistant":
        if endpoint != "chat.completions":
            raise ValueError("a message answer fits a chat call only; answer a `/v1/completions` call with text.")
        finish = "tool_calls" if answer.get("tool_calls") else "stop"
        answer = {"choices": [{"index": 0, "message": dict(answer), "finish_reason": finish, "logprobs": None}]}
    if isinstance(answer, str):
        if endpoint == "chat.completions":
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
                "logprobs": None,
            }
        else:
            choice = {"index": 0, "text": answer, "finish_reason": "stop", "logprobs": None}
        out: dict[str, Any] = {"choices": [choice]}
    elif isinstance(answer, dict):
        choices = answer.get("choices")
        if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
            raise ValueError(
                "a dict answer must be a whole completion with a non-empty `choices` list or an "
                f"assistant message (`role` 'assistant'), got keys {sorted(answer)}; pass the text "
                "alone to have one built."
            )
        out = dict(answer)
    else:
        raise TypeError(f"an answer must be text or a completion dict, got {type(answer).__name__}.")
    out.setdefault("id", new_id(endpoint))
    out.setdefault("object", "chat.completion" if endpoint == "chat.completions" else "text_completion")
    out.setdefault("created", int(time.time()))
    out.setdefault("model", request.get("model", "rock-envs"))
    if usage is not None:
        out["usage"] = usage
    out.setdefault("usage", None)
    return out


def sse(obj: dict[str, Any] | str) -> bytes:
    return b"data: " + (obj if isinstance(obj, str) else json.dumps(obj)).encode() + b"\n\n"


def stream_chunks(endpoint: Endpoint, request: dict[str, Any], done: dict[str, Any]) -> Iterator[bytes]:
    """The SSE events that stream ``done`` (a whole completion): role, content, finish, usage, ``[DONE]``."""
    base = {"id": done["id"], "created": done["created"], "model": done["model"]}
    choice = done["choices"][0]
    include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
    if endpoint == "chat.completions":
        base["object"] = "chat.completion.chunk"
        message = choice.get("message") or {}
        text = message.get("content") or ""

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

        yield sse(chunk({"role": "assistant", "content": ""}))
        for piece in _pieces(text):
            yield sse(chunk({"content": piece}))
        for i, call in enumerate(message.get("tool_calls") or []):
            yield sse(chunk({"tool_calls": [{"index": i, **call}]}))
        yield sse(chunk({}, choice.get("finish_reason") or "stop"))
    else:
        base["object"] = "text_completion"
        for piece in _pieces(choice.get("text") or ""):
            yield sse({**base, "choices": [{"index": 0, "text": piece, "finish_reason": None, "logprobs": None}]})
        yield sse(
            {
                **base,
                "choices": [
                    {"index": 0, "text": "", "finish_reason": choice.get("finish_reason") or "stop", "logprobs": None}
                ],
            }
        )
    if include_usage and done.get("usage"):
        yield sse({**base, "choices": [], "usage": done["usage"]})
    yield sse("[DONE]")


def _pieces(text: str, size: int = 64) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


class SSEData:
    """The JSON objects of a server-sent event stream's ``data:`` lines, as bytes arrive."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> Iterator[dict[str, Any]]:
        self.buf += data.replace(b"\r\n", b"\n")
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
                continue
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event


class StreamAssembler:
    """Rebuild a whole completion from an upstream's SSE bytes (for the recorded trajectory)."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint, self.sse, self.text, self.tool_calls = endpoint, SSEData(), [], {}  # type: ignore[var-annotated]
        self.head: dict[str, Any] = {}
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.prompt_token_ids: list[int] | None = None
        self.token_ids: list[int] = []
        self.logprobs: list[Any] = []
        self.logprob_tokens: list[Any] = []

    def feed(self, data: bytes) -> None:
        for event in self.sse.feed(data):
            self.head = self.head or {k: event.get(k) for k in ("id", "created", "model")}
            self.usage = event.get("usage") or self.usage
            self.prompt_token_ids = event.get("prompt_token_ids") or self.prompt_token_ids
            for choice in event.get("choices") or []:
                self.prompt_token_ids = choice.get("prompt_token_ids") or self.prompt_token_ids
                self.token_ids += choice.get("token_ids") or []
                logprobs = choice.get("logprobs")
                if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
                    self.logprobs += logprobs["content"]
                elif isinstance(logprobs, dict):
                    self.logprobs += logprobs.get("token_logprobs") or []
                    self.logprob_tokens += logprobs.get("tokens") or []
                delta = choice.get("delta") or {}
                self.text.append(delta.get("content") or choice.get("text") or "")
                for call in delta.get("tool_calls") or []:
                    slot = self.tool_calls.setdefault(call.get("index", 0), {"function": {"arguments": ""}})
                    for key in ("id", "type"):
                        if call.get(key):
                            slot[key] = call[key]
                    fn = call.get("function") or {}
                    if fn.get("name"):
                        slot["function"]["name"] = fn["name"]
                    slot["function"]["arguments"] += fn.get("arguments") or ""
                self.finish = choice.get("finish_reason") or self.finish

    def result(self) -> dict[str, Any]:
        text = "".join(self.text)
        if self.endpoint == "chat.completions":
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if self.tool_calls:
                message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
            choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": self.finish}
            kind = "chat.completion"
            logprobs: Any = {"content": self.logprobs} if self.logprobs else None
        else:
            choice, kind = {"index": 0, "text": text, "finish_reason": self.finish}, "text_completion"
            logprobs = {"tokens": self.logprob_tokens, "token_logprobs": self.logprobs} if self.logprobs else None
        choice["logprobs"] = logprobs
        if self.token_ids:
            choice["token_ids"] = self.token_ids
        out = {**self.head, "object": kind, "choices": [choice], "usage": self.usage}
        if self.prompt_token_ids:
            out["prompt_token_ids"] = self.prompt_token_ids
        return out


class SSERewriter:
    """Server-sent events passed on without the token fields the agent did not ask for (proxy mode)."""

    def __init__(self, keep_logprobs: bool):
        self.keep_logprobs, self.buf = keep_logprobs, b""

    def feed(self, data: bytes) -> bytes:
        from .tokens import strip

        self.buf += data.replace(b"\r\n", b"\n")
        out = []
        while b"\n\n" in self.buf:
            event, self.buf = self.buf.split(b"\n\n", 1)
            lines = []
            for line in event.split(b"\n"):
                if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                    try:
                        obj = json.loads(line[5:])
                    except ValueError:
                        obj = None
                    if isinstance(obj, dict):
                        line = b"data: " + json.dumps(strip(obj, self.keep_logprobs)).encode()
                lines.append(line)
            out.append(b"\n".join(lines) + b"\n\n")
        return b"".join(out)
