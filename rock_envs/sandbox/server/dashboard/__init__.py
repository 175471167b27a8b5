"""``GET /dashboard``: a live page of the server, reading the numbers the manager and /metrics already have.

The page and its assets (``static/``, shipped in the wheel; no build step, no CDN) are public:
they hold no data. Everything it shows comes from ``/dashboard/api/*`` (and a few of the server's
own routes: job logs, files, trajectories), each behind the same bearer token as the rest of the
server. The page asks for the token once, keeps it in the browser's ``localStorage`` and sends it
as an ``Authorization`` header; it never goes into a URL.

Reading the list never touches a sandbox's idle clock, so a dashboard left open does not keep
sandboxes from their TTL; opening one sandbox's detail view is a use, like any other call.
"""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ....core.live_view import FRAME_FILE, WANTED_FILE
from ...errors import SandboxError, SandboxFileNotFoundError
from ...metrics import cgroup_usage
from ..workers import frame_dir
from . import views

page_router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/dashboard/api", include_in_schema=False)
ASSETS = {"app.js": "text/javascript", "style.css": "text/css", "charts.js": "text/javascript"}
LIST_CAP = 200  # sandboxes in the list; sessions and jobs are read for the first PEEK_CAP of them
PEEK_CAP = 50


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


@page_router.get("/dashboard")
async def page() -> HTMLResponse:
    return HTMLResponse(_asset("index.html"), headers={"cache-control": "no-store"})


@page_router.get("/dashboard/static/{name}")
async def asset(name: str) -> Response:
    if name not in ASSETS:
        raise SandboxFileNotFoundError(
            f"`GET /dashboard/static/{name}`: no such asset; the page uses {sorted(ASSETS)}."
        )
    return Response(_asset(name), media_type=ASSETS[name], headers={"cache-control": "no-store"})


def _state(request: Request) -> Any:
    return request.app.state


@api_router.get("/overview")
async def overview(request: Request) -> dict[str, Any]:
    state = _state(request)
    manager = state.manager
    return {
        "time": time.time(),
        "stats": manager.stats().model_dump(),
        "creates": views.totals(manager.metrics.create),
        "exec": views.totals(state.metrics.requests, route="/sandboxes/{sid}/commands"),
        "pools": [views.pool_row(p.stats()) for p in list(manager.pools.values())],
        "model": views.model_totals(manager.models),
        "relay": views.relay_totals(state.relay),
        "gem_envs": len(state.rock_gem.envs),
    }


async def _peek(manager: Any, sid: str, op: str, key: str) -> int | None:
    """How many sessions or jobs a sandbox has, without counting as a use (its idle clock is kept)."""
    entry = manager.sandboxes.get(sid)
    if entry is None or entry.status != "running":
        return None
    before = entry.last_used_at
    try:
        async with manager.use(sid, "dashboard") as agent:
            reply, _ = await agent.call({"op": op}, timeout=5)
        return len(reply.get(key) or [])
    except SandboxError:
        return None
    finally:
        entry.last_used_at = before


@api_router.get("/sandboxes")
async def sandboxes(request: Request) -> dict[str, Any]:
    manager = _state(request).manager
    entries = sorted(manager.sandboxes.values(), key=lambda e: e.created_at)[:LIST_CAP]
    now = time.time()
    peeks = entries[:PEEK_CAP]
    counts = await asyncio.gather(
        *(_peek(manager, e.id, "session.list", "sessions") for e in peeks),
        *(_peek(manager, e.id, "job.list", "jobs") for e in peeks),
    )
    rows = []
    for k, entry in enumerate(entries):
        usage = cgroup_usage(entry.placement.extra) if entry.placement else {}
        row = views.sandbox_row(entry, now, usage)
        if k < len(peeks):
            row["sessions"], row["jobs"] = counts[k], counts[len(peeks) + k]
        rows.append(row)
    return {"sandboxes": rows, "total": len(manager.sandboxes)}


PROCESSES = (  # every process but this listing's own shell: pid, then its command line on one line
    'for d in /proc/[0-9]*; do p=${d#/proc/}; [ "$p" = "$$" ] && continue; '
    'c=$(tr "\\0\\n\\t" "   " < "$d/cmdline" 2>/dev/null | cut -c1-300); '
    '[ -n "$c" ] && printf "%s\\t%s\\n" "$p" "$c"; done'
)


@api_router.get("/sandboxes/{sid}")
async def sandbox(sid: str, request: Request) -> dict[str, Any]:
    from ... import models as m

    state = _state(request)
    manager, api = state.manager, state.api
    entry = manager.get(sid, "dashboard")
    usage = cgroup_usage(entry.placement.extra) if entry.placement else {}
    detail: dict[str, Any] = {
        "sandbox": views.sandbox_row(entry, time.time(), usage),
        "info": entry.info().model_dump(),
        "commands": state.history.recent(sid),
        "processes": [],
        "jobs": [],
        "files": [],
    }
    if entry.status == "running":
        ps = await api.run(sid, m.RunRequest(cmd=PROCESSES, timeout=10))
        detail["processes"] = [dict(zip(("pid", "command"), line.split("\t", 1))) for line in ps.output.splitlines()]
        detail["jobs"] = [job.model_dump() for job in (await api.list_jobs(sid)).jobs]
        detail["files"] = [f.model_dump() for f in (await api.list_files(sid, m.FileQuery(path="."))).entries]
    return detail


@api_router.get("/model")
async def model(request: Request) -> dict[str, Any]:
    return views.model_page(_state(request).manager.models)


@api_router.get("/workers")
async def workers(request: Request) -> dict[str, Any]:
    state = _state(request)
    return {"channels": views.channel_rows(state.relay), "relay": views.relay_totals(state.relay)}


@api_router.get("/workers/{key}/frame")
async def worker_frame(key: str, request: Request) -> Response:
    """The live frame of worker ``key`` (``image/png``), asking it to keep publishing (see
    :mod:`rock_envs.core.live_view`); 204 while there is none: its envs' ``render_mode`` is not
    ``rgb_array``, it has not answered a request since it was asked, or it closed meanwhile."""
    from ... import models as m

    state = _state(request)
    relay = state.relay
    if not (key.startswith("w") and key[1:].isdigit() and 0 < int(key[1:]) <= relay.serial):
        raise SandboxFileNotFoundError(
            f"`GET /dashboard/api/workers/{key}/frame`: no worker {key!r} was opened here; "
            "take keys from `GET /dashboard/api/workers`."
        )
    channel = next((c for c in list(relay.open.values()) if c.key == key), None)
    if channel is None:
        return Response(status_code=204)
    where = frame_dir(key)
    try:
        await state.api.write_file(channel.entry.id, m.UploadRequest(path=f"{where}/{WANTED_FILE}"), b"")
        chunks = await state.api.download(channel.entry.id, m.DownloadRequest(path=f"{where}/{FRAME_FILE}"))
        data = b"".join([chunk async for chunk in chunks])
    except SandboxError:  # no frame yet, or the sandbox went away meanwhile
        return Response(status_code=204)
    return Response(data, media_type="image/png", headers={"cache-control": "no-store"})


@api_router.get("/envs")
async def envs(request: Request) -> dict[str, Any]:
    return {"envs": [views.gem_row(gem_id, env) for gem_id, env in list(_state(request).rock_gem.envs.items())]}
