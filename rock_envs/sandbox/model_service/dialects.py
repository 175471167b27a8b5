"""The four APIs an agent may speak, behind one face: chat completions, legacy completions, the
Responses API and Anthropic's Messages API.

The trainer thinks in chat terms: every call offers its messages and tools as chat messages and
chat tools (:func:`chat_messages`, :func:`chat_tools`), and an answer (text, an assistant message,
a ``chat.completion``) is turned into the call's own dialect (:func:`answer`); a dialect's own
whole object (``object: "response"``, ``type: "message"``) passes as it is.
"""

from __future__ import annotations

from typing import Any, Iterator

from . import anthropic_format as an
from . import openai_format as oa
from . import responses_format as rs
from . import tokens
from .models import Endpoint

ENDPOINTS: dict[str, Endpoint] = {
    "/v1/chat/completions": "chat.completions",
    "/v1/completions": "completions",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
}
UPSTREAM_PATHS: dict[Endpoint, str] = {e: p[3:] for p, e in ENDPOINTS.items()}
"""Where each call goes on an upstream whose base URL ends in ``/v1``."""


def check_request(endpoint: Endpoint, body: bytes) -> dict[str, Any]:
    if endpoint in ("chat.completions", "completions"):
        return oa.check_request(endpoint, body)
    req = oa.parse(body)
    return rs.check_request(req) if endpoint == "responses" else an.check_request(req)


def chat_messages(endpoint: Endpoint, request: dict[str, Any]) -> list[dict[str, Any]]:
    if endpoint == "responses":
        return rs.to_chat_messages(request)
    if endpoint == "messages":
        return an.to_chat_messages(request)
    return list(request.get("messages") or [])


def chat_tools(endpoint: Endpoint, request: dict[str, Any]) -> list[dict[str, Any]]:
    if endpoint == "responses":
        return rs.chat_tools(request)
    if endpoint == "messages":
        return an.chat_tools(request)
    return list(request.get("tools") or [])


def answer(
    endpoint: Endpoint, request: dict[str, Any], given: Any, usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The whole answer the agent gets, in its dialect (``ValueError``/``TypeError`` for a bad one)."""
    if endpoint in ("chat.completions", "completions"):
        return oa.completion(endpoint, request, given, usage)
    if endpoint == "responses" and isinstance(given, dict) and given.get("object") == "response":
        return {**given, **({"usage": rs.usage_of(usage)} if usage else {})}
    if endpoint == "messages" and isinstance(given, dict) and given.get("type") == "message":
        return dict(given)
    chat = oa.completion("chat.completions", request, given, usage)
    return rs.from_chat(request, chat) if endpoint == "responses" else an.from_chat(request, chat)


def stream(endpoint: Endpoint, request: dict[str, Any], done: dict[str, Any]) -> Iterator[bytes]:
    if endpoint == "responses":
        return rs.stream_events(done)
    if endpoint == "messages":
        return an.stream_events(done)
    return oa.stream_chunks(endpoint, request, done)


def record_fields(endpoint: Endpoint, done: dict[str, Any]) -> dict[str, Any]:
    """What a whole answer tells the record: tokens (chat and completions), ``finish_reason``, ``model``."""
    if endpoint in ("chat.completions", "completions"):
        return tokens.extract(endpoint, done)
    reason = rs.finish_reason(done) if endpoint == "responses" else an.finish_reason(done)
    return {"finish_reason": reason, **({"model": done["model"]} if isinstance(done.get("model"), str) else {})}


def agent_view(endpoint: Endpoint, request: dict[str, Any], done: dict[str, Any]) -> dict[str, Any]:
    """``done`` without the token fields the agent did not ask for."""
    if endpoint in ("chat.completions", "completions"):
        return tokens.strip(done, keep_logprobs=tokens.agent_wants_logprobs(request))
    return done


def usage(endpoint: Endpoint, done: dict[str, Any]) -> dict[str, Any] | None:
    value = done.get("usage")
    return value if isinstance(value, dict) else None


def assembler(endpoint: Endpoint) -> Any:
    """Rebuilds a whole answer from an upstream's stream: ``feed(bytes)``, then ``result()``."""
    if endpoint == "responses":
        return rs.StreamAssembler()
    if endpoint == "messages":
        return an.StreamAssembler()
    return oa.StreamAssembler(endpoint)


def error_body(path: str, exc: oa.OpenAIError) -> dict[str, Any]:
    return an.error_body(exc) if path.rstrip("/").endswith("/v1/messages") else exc.body()
