"""The server's ModelService routes: ``/v1/*`` for agents (a sandbox's own key), ``/model/*`` for the trainer.

The agents' side is a plain ASGI router in front of the whole app (:class:`AgentWire`), not a
FastAPI route: a call is one request in and one answer out, and FastAPI's middleware, routing over
every route of the server and request objects cost more server CPU per call than the ModelService's
own work. The trainer's side is ordinary FastAPI routes behind the server token.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Callable, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import SandboxError
from . import openai_format as oa
from .hub import ModelHub, Reply, error_reply
from .models import (
    CallRecord,
    NextCalls,
    NextCallsRequest,
    RespondedMany,
    RespondMany,
    RespondOutcome,
    RespondRequest,
    Trajectory,
)

AGENT_PREFIX = "/v1/"


class AgentWire:
    """ASGI: ``/v1/*`` (OpenAI- and Anthropic-compatible; authenticated by the sandbox's key, not the
    server token) straight to the hub; every other path to ``app``. ``observe(method, seconds)`` is
    told each call's round trip (the server's request metrics)."""

    def __init__(
        self, app: ASGIApp, hub: Callable[[], ModelHub], max_body: int, observe: Callable[[str, float], None] | None
    ):
        self.app, self.hub, self.max_body, self.observe = app, hub, max_body, observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(AGENT_PREFIX):
            return await self.app(scope, receive, send)
        began = time.perf_counter()
        try:
            await self._call(scope, receive, send)
        finally:
            if self.observe is not None:
                self.observe(scope["method"], time.perf_counter() - began)

    async def _call(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = await self._body(receive)
        if body is None:
            message = f"request body is over this server's limit of {self.max_body} bytes; send less."
            return await _answer(send, error_reply(oa.OpenAIError(413, message), path))
        hub = self.hub()
        scheme, _, key = headers.get("authorization", "").partition(" ")
        sandbox_id = hub.sandbox_for_key(key.strip()) if scheme.lower() == "bearer" else None
        query = scope.get("query_string") or b""
        target = path + ("?" + query.decode("latin-1") if query else "")
        reply = await hub.handle(sandbox_id, scope["method"], target, headers, body)
        if reply.stream is None:
            return await _answer(send, reply)
        await _stream(send, receive, reply)

    async def _body(self, receive: Receive) -> bytes | None:
        """The whole body, or ``None`` once it is over ``max_body``."""
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _head(reply: Reply, extra: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    headers = [(b"content-type", reply.media_type.encode()), *extra]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    return {"type": "http.response.start", "status": reply.status, "headers": headers}


async def _answer(send: Send, reply: Reply) -> None:
    await send(_head(reply, [(b"content-length", str(len(reply.body)).encode())]))
    await send({"type": "http.response.body", "body": reply.body})


async def _stream(send: Send, receive: Receive, reply: Reply) -> None:
    """Send the stream chunk by chunk; an agent that hangs up ends it (the record says so)."""
    assert reply.stream is not None
    stream = reply.stream

    async def pump() -> None:
        try:
            await send(_head(reply, [(b"cache-control", b"no-cache")]))
            async for chunk in stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    async def hang_up() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    sending, listening = asyncio.ensure_future(pump()), asyncio.ensure_future(hang_up())
    try:
        await asyncio.wait((sending, listening), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, listening):
            task.cancel()
        await asyncio.gather(sending, listening, return_exceptions=True)
    if sending.done() and not sending.cancelled() and sending.exception() is not None:
        raise sending.exception()  # type: ignore[misc]


trainer_router = APIRouter(tags=["model service"], include_in_schema=False)  # long polls: kept out of fuzzed schemas
"""The trainer's side; mounted behind the server token."""


def _hub(request: Request) -> ModelHub:
    return request.app.state.manager.models


# The trainer's hot routes answer with the models' own JSON: FastAPI would validate the returned
# model against `response_model` once more before serialising it, for every call.


@trainer_router.post("/model/calls/next", response_model=NextCalls)
async def next_calls(req: NextCallsRequest, request: Request) -> Response:
    """Long poll: up to ``max_calls`` unanswered calls, each handed out once; ``[]`` after ``timeout``."""
    calls = await _hub(request).next_calls(req.sandbox_id, req.max_calls, req.timeout)
    return Response(NextCalls(calls=calls).model_dump_json(), media_type="application/json")


@trainer_router.post("/model/calls/respond", response_model=RespondedMany)
async def respond_many(req: RespondMany, request: Request) -> Response:
    """Several answers at once; each lands or fails on its own (a bad one never holds up the others)."""
    hub, outcomes = _hub(request), []
    for item in req.answers:
        try:
            hub.respond(item.call_id, item)
            outcomes.append(RespondOutcome(call_id=item.call_id))
        except SandboxError as exc:
            outcomes.append(RespondOutcome(call_id=item.call_id, error_type=type(exc).__name__, message=exc.message))
    return Response(RespondedMany(outcomes=outcomes).model_dump_json(), media_type="application/json")


@trainer_router.post("/model/calls/{call_id}/respond", response_model=CallRecord)
async def respond(call_id: str, req: RespondRequest, request: Request) -> Response:
    return Response(_hub(request).respond(call_id, req).model_dump_json(), media_type="application/json")


@trainer_router.get("/model/trajectories/{sandbox_id}", response_model=Trajectory)
async def trajectory(
    sandbox_id: str, request: Request, format: Annotated[Literal["json", "jsonl"], Query()] = "json"
) -> Response:
    records = _hub(request).trajectory(sandbox_id)
    if format == "jsonl":
        return Response("".join(r.model_dump_json() + "\n" for r in records), media_type="application/x-ndjson")
    return Response(Trajectory(sandbox_id=sandbox_id, records=records).model_dump_json(), media_type="application/json")
