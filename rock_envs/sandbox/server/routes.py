"""HTTP routes: sandboxes, sessions, commands (plain and streamed as NDJSON), jobs, files (streamed).

Each route is one call of the local :class:`SandboxAPI` (``app.state.api``): path and query
parameters become its request model, its response model is the answer."""

from __future__ import annotations

import json
import time
from typing import Annotated, AsyncIterator, Literal, Optional

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse

from .. import models as m
from ..api import SandboxAPI
from ..errors import InvalidRequestError, SandboxError, SandboxNotFoundError

router = APIRouter()
Path = Annotated[str, Query(min_length=1, max_length=4096, description="path relative to the sandbox root")]
SessionName = Annotated[str, PathParam(pattern=m.SESSION_NAME)]
JobId = Annotated[str, PathParam(min_length=1, max_length=128)]
SnapshotId = Annotated[str, PathParam(min_length=1, max_length=64)]


def _api(request: Request) -> SandboxAPI:
    return request.app.state.api


@router.post("/sandboxes", status_code=201, response_model=m.SandboxInfo, tags=["sandboxes"])
async def create_sandbox(spec: m.SandboxSpec, request: Request) -> m.SandboxInfo:
    api = _api(request)
    with request.app.state.quota.admit(request.headers.get("authorization", ""), spec) as created:
        info = await api.create(spec)
        created["id"] = info.id
    return info


@router.get("/sandboxes", response_model=m.SandboxList, tags=["sandboxes"])
async def list_sandboxes(
    request: Request,
    status: Optional[Literal["starting", "running", "stopped", "dead", "pooled"]] = None,
    runtime: Optional[Literal["process", "docker"]] = None,
    label: Annotated[list[str], Query(description="key=value; repeat for several")] = [],  # noqa: B006
) -> m.SandboxList:
    labels = {}
    for item in label:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidRequestError(f"`list`: label filter must be key=value, got {item!r}.")
        labels[key] = value
    return await _api(request).list(m.ListRequest(status=status, runtime=runtime, labels=labels))


@router.get("/sandboxes/{sid}", response_model=m.SandboxInfo, tags=["sandboxes"])
async def get_sandbox(sid: str, request: Request) -> m.SandboxInfo:
    return await _api(request).info(sid)


@router.delete("/sandboxes/{sid}", response_model=m.SandboxInfo, tags=["sandboxes"])
async def delete_sandbox(sid: str, request: Request) -> m.SandboxInfo:
    return await _api(request).delete(sid)


@router.post("/pools", status_code=201, response_model=m.PoolStats, tags=["pools"])
async def create_pool(req: m.PoolRequest, request: Request) -> m.PoolStats:
    return await _api(request).create_pool(req)


@router.get("/pools", response_model=m.PoolList, tags=["pools"])
async def list_pools(request: Request) -> m.PoolList:
    return await _api(request).list_pools()


@router.delete("/pools/{name}", response_model=m.PoolStats, tags=["pools"])
async def delete_pool(name: str, request: Request) -> m.PoolStats:
    return await _api(request).delete_pool(name)


@router.post("/pools/{name}/claim", status_code=201, response_model=m.SandboxInfo, tags=["pools"])
async def claim(name: str, req: m.ClaimRequest, request: Request) -> m.SandboxInfo:
    api = _api(request)
    pools = {pool.name: pool.spec for pool in (await api.list_pools()).pools}
    if name not in pools:
        raise SandboxNotFoundError(
            f"`claim`: no pool {name!r} on this server (pools: {', '.join(sorted(pools)) or 'none'})."
        )
    with request.app.state.quota.admit(request.headers.get("authorization", ""), pools[name]) as created:
        info = await api.claim(req.model_copy(update={"pool": name}))
        created["id"] = info.id
    return info


@router.post("/sandboxes/{sid}/recycle", response_model=m.SandboxInfo, tags=["pools"])
async def recycle(sid: str, request: Request) -> m.SandboxInfo:
    return await _api(request).recycle(sid)


@router.post("/sandboxes/{sid}/lease", response_model=m.SandboxInfo, tags=["sandboxes"])
async def renew(sid: str, req: m.LeaseRequest, request: Request) -> m.SandboxInfo:
    return await _api(request).renew(sid, req)


@router.post("/leases", response_model=m.LeasesRenewed, tags=["sandboxes"])
async def renew_all(req: m.LeasesRequest, request: Request) -> m.LeasesRenewed:
    return await _api(request).renew_all(req)


@router.get("/stats", response_model=m.ManagerStats, tags=["sandboxes"])
async def stats(request: Request) -> m.ManagerStats:
    return await _api(request).stats()


@router.post("/sandboxes/{sid}/sessions", status_code=201, response_model=m.SessionRef, tags=["sessions"])
async def create_session(sid: str, req: m.SessionRequest, request: Request) -> m.SessionRef:
    return await _api(request).create_session(sid, req)


@router.delete("/sandboxes/{sid}/sessions/{name}", response_model=m.SessionRef, tags=["sessions"])
async def close_session(sid: str, name: SessionName, request: Request) -> m.SessionRef:
    return await _api(request).close_session(sid, m.SessionRef(session=name))


@router.post("/sandboxes/{sid}/commands", response_model=m.CommandResult, tags=["commands"])
async def run_command(sid: str, req: m.RunRequest, request: Request) -> Response:
    began = time.perf_counter()
    result = await _api(request).run(sid, req)  # the hot path: serialize once, skip re-validation
    request.app.state.history.add(sid, req.cmd, result.exit_code, result.timed_out, time.perf_counter() - began)
    return Response(result.model_dump_json(), media_type="application/json")


@router.post(
    "/sandboxes/{sid}/commands/stream", tags=["commands"], responses={200: {"content": {"application/x-ndjson": {}}}}
)
async def stream_command(sid: str, req: m.RunRequest, request: Request) -> StreamingResponse:
    """NDJSON: ``{"type": "chunk", "stream", "data"}`` lines as output arrives, then ``{"type": "result", ...}``,
    or ``{"type": "error", "error": {"type", "message"}}`` if the sandbox failed mid-stream."""
    events = await _api(request).run_stream(sid, req)  # an unknown or dead sandbox raises here: its status

    async def lines() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                yield json.dumps(event).encode() + b"\n"
        except SandboxError as exc:  # the status line is sent: the error goes as the last event
            yield (
                m.ErrorEvent(error=m.ErrorDetail(type=type(exc).__name__, message=exc.message))
                .model_dump_json()
                .encode()
            )

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/sandboxes/{sid}/jobs", status_code=201, response_model=m.JobInfo, tags=["jobs"])
async def start_job(sid: str, req: m.JobRequest, request: Request) -> m.JobInfo:
    return await _api(request).start_job(sid, req)


@router.get("/sandboxes/{sid}/jobs", response_model=m.JobList, tags=["jobs"])
async def list_jobs(sid: str, request: Request) -> m.JobList:
    return await _api(request).list_jobs(sid)


@router.get("/sandboxes/{sid}/jobs/{job_id}", response_model=m.JobInfo, tags=["jobs"])
async def get_job(sid: str, job_id: JobId, request: Request) -> m.JobInfo:
    return await _api(request).job(sid, m.JobRef(job_id=job_id))


@router.post("/sandboxes/{sid}/jobs/{job_id}/wait", response_model=m.JobInfo, tags=["jobs"])
async def wait_job(
    sid: str, job_id: JobId, request: Request, timeout: Annotated[float, Query(gt=0, le=24 * 3600)] = 60.0
) -> m.JobInfo:
    return await _api(request).wait_job(sid, m.WaitJobRequest(job_id=job_id, timeout=timeout))


@router.get("/sandboxes/{sid}/jobs/{job_id}/logs", response_model=m.JobLogs, tags=["jobs"])
async def job_logs(
    sid: str,
    job_id: JobId,
    request: Request,
    stream: Literal["stdout", "stderr"] = "stdout",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[Optional[int], Query(ge=1, le=1 << 30)] = None,
) -> m.JobLogs:
    return await _api(request).job_logs(sid, m.JobLogsRequest(job_id=job_id, stream=stream, offset=offset, limit=limit))


@router.post("/sandboxes/{sid}/jobs/{job_id}/kill", response_model=m.JobInfo, tags=["jobs"])
async def kill_job(sid: str, job_id: JobId, request: Request) -> m.JobInfo:
    return await _api(request).kill_job(sid, m.JobRef(job_id=job_id))


@router.get("/sandboxes/{sid}/files", response_model=m.FileList, tags=["files"])
async def list_files(sid: str, request: Request, path: Path = ".", recursive: bool = False) -> m.FileList:
    return await _api(request).list_files(sid, m.FileQuery(path=path, recursive=recursive))


@router.delete("/sandboxes/{sid}/files", response_model=m.TransferResult, tags=["files"])
async def delete_file(sid: str, request: Request, path: Path, recursive: bool = False) -> m.TransferResult:
    return await _api(request).delete_file(sid, m.FileQuery(path=path, recursive=recursive))


@router.post("/sandboxes/{sid}/snapshots", status_code=201, response_model=m.SandboxSnapshot, tags=["snapshots"])
async def snapshot_sandbox(sid: str, req: m.SnapshotRequest, request: Request) -> m.SandboxSnapshot:
    return await _api(request).snapshot(sid, req)


@router.get("/snapshots", response_model=m.SnapshotList, tags=["snapshots"])
async def list_snapshots(
    request: Request,
    name: Annotated[Optional[str], Query(pattern=m.NAME)] = None,
    sandbox_id: Annotated[Optional[str], Query(max_length=64)] = None,
) -> m.SnapshotList:
    return await _api(request).list_snapshots(m.SnapshotQuery(name=name, sandbox_id=sandbox_id))


@router.get("/snapshots/{snapshot_id}", response_model=m.SandboxSnapshot, tags=["snapshots"])
async def get_snapshot(snapshot_id: SnapshotId, request: Request) -> m.SandboxSnapshot:
    return await _api(request).snapshot_info(snapshot_id)


@router.delete("/snapshots/{snapshot_id}", response_model=m.SandboxSnapshot, tags=["snapshots"])
async def delete_snapshot(snapshot_id: SnapshotId, request: Request) -> m.SandboxSnapshot:
    return await _api(request).delete_snapshot(snapshot_id)


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


@router.put(
    "/sandboxes/{sid}/files/content",
    response_model=m.TransferResult,
    tags=["files"],
    openapi_extra={
        "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    },
)
async def upload_file(
    sid: str, request: Request, path: Path, mode: Annotated[Optional[int], Query(ge=0, le=0o7777)] = None
) -> m.TransferResult:
    """The body is the file's bytes, streamed to the sandbox as they arrive."""
    return await _api(request).upload(sid, m.UploadRequest(path=path, mode=mode), _body(request))


@router.get(
    "/sandboxes/{sid}/files/content", tags=["files"], responses={200: {"content": {"application/octet-stream": {}}}}
)
async def download_file(sid: str, request: Request, path: Path) -> StreamingResponse:
    chunks = await _api(request).download(sid, m.DownloadRequest(path=path))
    return StreamingResponse(chunks, media_type="application/octet-stream")


@router.put(
    "/sandboxes/{sid}/files/tar",
    response_model=m.TransferResult,
    tags=["files"],
    openapi_extra={
        "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    },
)
async def upload_tar(sid: str, request: Request, path: Path) -> m.TransferResult:
    """The body is a tar stream, extracted under ``path`` (members escaping it are refused)."""
    return await _api(request).upload(sid, m.UploadRequest(path=path, tar=True), _body(request))


@router.get("/sandboxes/{sid}/files/tar", tags=["files"], responses={200: {"content": {"application/x-tar": {}}}})
async def download_tar(sid: str, request: Request, path: Path) -> StreamingResponse:
    chunks = await _api(request).download(sid, m.DownloadRequest(path=path, tar=True))
    return StreamingResponse(chunks, media_type="application/x-tar")
