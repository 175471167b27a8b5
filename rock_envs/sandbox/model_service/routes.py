"""The server's ModelService routes: ``/v1/*`` for agents (a sandbox's own key), ``/model/*`` for the trainer."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from .hub import ModelHub
from .models import CallRecord, NextCalls, NextCallsRequest, RespondRequest, Trajectory

agent_router = APIRouter()
"""OpenAI-compatible; authenticated by the sandbox's ``OPENAI_API_KEY``, not the server token."""
trainer_router = APIRouter(tags=["model service"], include_in_schema=False)  # long polls: kept out of fuzzed schemas
"""The trainer's side; mounted behind the server token."""


def _hub(request: Request) -> ModelHub:
    return request.app.state.manager.models


@agent_router.api_route("/v1/{rest:path}", methods=["GET", "POST"], include_in_schema=False)
async def openai_compatible(rest: str, request: Request) -> Response:
    hub = _hub(request)
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    sandbox_id = hub.sandbox_for_key(key.strip()) if scheme.lower() == "bearer" else None
    reply = await hub.handle(sandbox_id, request.method, "/v1/" + rest, dict(request.headers), await request.body())
    if reply.stream is not None:
        return StreamingResponse(
            reply.stream,
            status_code=reply.status,
            media_type=reply.media_type,
            headers={"cache-control": "no-cache", **reply.headers},
        )
    return Response(reply.body, status_code=reply.status, media_type=reply.media_type, headers=reply.headers)


@trainer_router.post("/model/calls/next", response_model=NextCalls)
async def next_calls(req: NextCallsRequest, request: Request) -> NextCalls:
    """Long poll: up to ``max_calls`` unanswered calls, each handed out once; ``[]`` after ``timeout``."""
    return NextCalls(calls=await _hub(request).next_calls(req.sandbox_id, req.max_calls, req.timeout))


@trainer_router.post("/model/calls/{call_id}/respond", response_model=CallRecord)
async def respond(call_id: str, req: RespondRequest, request: Request) -> CallRecord:
    return _hub(request).respond(call_id, req)


@trainer_router.get("/model/trajectories/{sandbox_id}", response_model=Trajectory)
async def trajectory(
    sandbox_id: str, request: Request, format: Annotated[Literal["json", "jsonl"], Query()] = "json"
) -> Response:
    records = _hub(request).trajectory(sandbox_id)
    if format == "jsonl":
        return Response("".join(r.model_dump_json() + "\n" for r in records), media_type="application/x-ndjson")
    return Response(Trajectory(sandbox_id=sandbox_id, records=records).model_dump_json(), media_type="application/json")
