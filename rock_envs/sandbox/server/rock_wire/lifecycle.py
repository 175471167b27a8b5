"""ROCK's sandbox lifecycle routes under ``/apis/envs/sandbox/v1``: start, status, stop, delete,
restart, list, batch status, the OSS token (none: the client stays on loopback), and ``Failed``
answers for what rock-envs does not do (commit, archive, port forwarding)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from .auth import authorize
from .envelope import WireError, enveloped, json_body, parse
from .models import BatchStatus, SandboxRef, StartRequest
from .registry import Registry

router = APIRouter(prefix="/apis/envs/sandbox/v1", tags=["rock wire"])


def registry(request: Request) -> Registry:
    return request.app.state.rock


def _owner(request: Request) -> dict[str, Any]:
    h = request.headers
    return {"user_id": h.get("x-user-id"), "experiment_id": h.get("x-experiment-id"), "namespace": h.get("x-namespace")}


async def _start(request: Request, op: str) -> dict[str, Any]:
    authorization = authorize(request, op)
    req = parse(StartRequest, await json_body(request, op), op)
    box = await registry(request).start(req, _owner(request), authorization)
    return {
        "sandbox_id": box.rock_id,
        "host_name": registry(request).host,
        "host_ip": "127.0.0.1",
        "cpus": float(req.limit_cpus or req.cpus),
        "memory": str(req.memory),
    }


@router.post("/start_async")
@enveloped("start_async")
async def start_async(request: Request) -> Any:
    return await _start(request, "start_async")


@router.post("/start")
@enveloped("start")
async def start(request: Request) -> Any:
    return await _start(request, "start")


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")


@router.get("/get_status")
@enveloped("get_status")
async def get_status(request: Request, sandbox_id: str = "", include_all_states: str = "False") -> Any:
    authorize(request, "get_status")
    reg = registry(request)
    return reg.status(await reg.find(sandbox_id, include_gone=_flag(include_all_states)))


@router.get("/is_alive")
@enveloped("is_alive")
async def is_alive(request: Request, sandbox_id: str = "") -> Any:
    authorize(request, "is_alive")
    try:
        box = await registry(request).find(sandbox_id)
    except WireError as exc:
        return {"is_alive": False, "message": exc.message}
    return {"is_alive": box.state == "running", "message": registry(request).host}


@router.post("/stop")
@enveloped("stop")
async def stop(request: Request) -> Any:
    authorize(request, "stop")
    ref = parse(SandboxRef, await json_body(request, "stop"), "stop")
    try:
        await registry(request).stop(ref.sandbox_id, "stop")
    except WireError:
        pass  # stop is idempotent, as the client treats it
    return f"{ref.sandbox_id} stopped"


@router.post("/delete")
@enveloped("delete")
async def delete(request: Request) -> Any:
    authorize(request, "delete")
    ref = parse(SandboxRef, await json_body(request, "delete"), "delete")
    await registry(request).stop(ref.sandbox_id, "delete")
    return f"{ref.sandbox_id} deleted"


@router.post("/restart")
@enveloped("restart")
async def restart(request: Request) -> Any:
    """A fresh sandbox under the same id and settings (its files are not kept: rock-envs has no stopped state)."""
    authorization = authorize(request, "restart")
    ref = parse(SandboxRef, await json_body(request, "restart"), "restart")
    reg = registry(request)
    box = await reg.find(ref.sandbox_id, include_gone=True)
    if ref.sandbox_id in reg.live:
        await reg.stop(ref.sandbox_id, "restart")
    req = box.request.model_copy(update={"sandbox_id": ref.sandbox_id})
    await reg.start(req, box.owner, authorization)
    return {"sandbox_id": ref.sandbox_id, "host_name": reg.host, "host_ip": "127.0.0.1"}


@router.get("/sandboxes")
@enveloped("list")
async def list_sandboxes(request: Request) -> Any:
    authorize(request, "list")
    reg = registry(request)
    items = [reg.status(box) for box in list(reg.live.values())]
    return {"items": items, "total": len(items), "has_more": False}


@router.post("/sandboxes/batch")
@enveloped("batch")
async def batch_status(request: Request) -> Any:
    authorize(request, "batch")
    req = parse(BatchStatus, await json_body(request, "batch"), "batch")
    reg, statuses = registry(request), []
    for rock_id in req.sandbox_ids:
        try:
            statuses.append(reg.status(await reg.find(rock_id, include_gone=True)))
        except WireError as exc:
            statuses.append(
                {"sandbox_id": rock_id, "is_alive": False, "state": None, "status": {}, "error": exc.message}
            )
    return {"statuses": statuses}


@router.get("/get_token")
@enveloped("get_token")
async def get_token(request: Request) -> Any:
    """No OSS here: without an endpoint or bucket the client decides OSS is unavailable and uploads to
    this server, so it never leaves loopback."""
    authorize(request, "get_token")
    return {"AccessKeyId": None, "AccessKeySecret": None, "SecurityToken": None, "Expiration": None}


def _unsupported(op: str) -> WireError:
    return WireError(
        f"`{op}` is not supported by rock-envs: a sandbox's changes live only as long as it does; "
        "build images with `rock-envs image build` and copy files out with `read_file` or `execute`."
    )


@router.post("/commit")
@router.get("/commit/{sandbox_id}")
@router.post("/sandboxes/{sandbox_id}/archive")
@router.get("/sandboxes/{sandbox_id}/portforward")
@router.get("/get_sandbox_statistics")
async def unsupported(request: Request) -> Any:
    op = request.url.path.rsplit("/v1/", 1)[-1].split("/")[0]

    @enveloped(op)
    async def answer() -> Any:
        authorize(request, op)
        raise _unsupported(op)

    return await answer()
