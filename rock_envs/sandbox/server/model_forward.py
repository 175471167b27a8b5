"""A data replica's ModelService routes: ``/v1/*`` (agents) and ``/model/*`` (the trainer), forwarded
as they are to the control plane's, and answered as it answers (streamed).

Why forward rather than share the queue in Redis: a call in trainer mode is an HTTP request held open
until the trainer answers it (seconds: a model's turn), and the hub keeps it as a waiting future, its
trajectory record and its sandbox's key, all on the control plane, which is also where the agents'
in-sandbox tunnels already deliver their calls. One more loopback hop is noise beside a model's
turn; a queue in Redis would need a second claim-and-answer protocol and a second trajectory store
that had to agree with the first. So whichever replica an agent's call reached, the trainer's
``service.calls()`` (on the control plane, or on any replica, which forwards it too) sees it.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from ..errors import ServerUnreachableError

router = APIRouter(include_in_schema=False)
HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "upgrade"}


def client(control_url: str) -> httpx.AsyncClient:
    """Kept-alive connections to the control plane; no read timeout: the control plane times its calls."""
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=64)
    return httpx.AsyncClient(base_url=control_url, timeout=httpx.Timeout(None, connect=5.0), limits=limits)


async def _forward(request: Request) -> Response:
    http: httpx.AsyncClient = request.app.state.control_http
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    outgoing = http.build_request(request.method, path, headers=headers, content=await request.body())
    try:
        answer = await http.send(outgoing, stream=True)
    except httpx.TransportError as exc:
        message = (
            f"`{request.url.path}`: this data replica could not reach the control plane at {http.base_url} "
            f"({type(exc).__name__}); its ModelService answers model calls. Is it running?"
        )
        if request.url.path.startswith("/v1/"):  # agents read OpenAI-style errors
            body = {"error": {"message": message, "type": "upstream_error", "param": None, "code": None}}
            return Response(json.dumps(body), status_code=502, media_type="application/json")
        raise ServerUnreachableError(message) from exc
    kept: dict[str, Any] = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
    return StreamingResponse(
        answer.aiter_raw(), status_code=answer.status_code, headers=kept, background=BackgroundTask(answer.aclose)
    )


@router.api_route("/v1/{rest:path}", methods=["GET", "POST"])
async def agent_calls(rest: str, request: Request) -> Response:
    """An agent's call, with its sandbox's own key: the control plane's hub checks it."""
    return await _forward(request)


@router.api_route("/model/{rest:path}", methods=["GET", "POST"])
async def trainer_calls(rest: str, request: Request) -> Response:
    """The trainer's long polls and answers, with the server token: the control plane checks it."""
    return await _forward(request)
