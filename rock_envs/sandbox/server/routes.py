"""HTTP routes: sandboxes, sessions, commands (plain and streamed as NDJSON), jobs, files (streamed)."""

from __future__ import annotations

import json
from typing import Annotated, AsyncIterator, Literal, Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from ..errors import InvalidRequestError
from ..manager import SandboxManager
from ..models import (
    CommandResult,
    FileList,
    JobInfo,
    JobList,
    JobLogs,
    JobRequest,
    RunRequest,
    SandboxInfo,
    SandboxList,
    SandboxSpec,
    SessionRequest,
    TransferResult,
)
from ..ops import Ops

router = APIRouter()
Path = Annotated[str, Query(min_length=1, max_length=4096, description="path relative to the sandbox root")]


def _ops(request: Request) -> Ops:
    return request.app.state.ops  # type: ignore[no-any-return]


def _manager(request: Request) -> SandboxManager:
    return request.app.state.manager  # type: ignore[no-any-return]


@router.post("/sandboxes", status_code=201, response_model=SandboxInfo, tags=["sandboxes"])
async def create_sandbox(spec: SandboxSpec, request: Request) -> SandboxInfo:
    manager = _manager(request)
    with request.app.state.quota.admit(manager, request.headers.get("authorization", ""), spec) as created:
        info = await manager.create(spec)
        created["id"] = info.id
    return info


@router.get("/sandboxes", response_model=SandboxList, tags=["sandboxes"])
async def list_sandboxes(
    request: Request,
    status: Optional[Literal["starting", "running", "stopped", "dead"]] = None,
    runtime: Optional[Literal["process", "docker"]] = None,
    label: Annotated[list[str], Query(description="key=value; repeat for several")] = [],  # noqa: B006
) -> SandboxList:
    labels = {}
    for item in label:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidRequestError(f"`list`: label filter must be key=value, got {item!r}.")
        labels[key] = value
    return SandboxList(sandboxes=_manager(request).list(status, runtime, labels))


@router.get("/sandboxes/{sid}", response_model=SandboxInfo, tags=["sandboxes"])
async def get_sandbox(sid: str, request: Request) -> SandboxInfo:
    return _manager(request).info(sid)


@router.delete("/sandboxes/{sid}", response_model=SandboxInfo, tags=["sandboxes"])
async def delete_sandbox(sid: str, request: Request) -> SandboxInfo:
    return await _manager(request).delete(sid)


@router.post("/sandboxes/{sid}/sessions", status_code=201, tags=["sessions"])
async def create_session(sid: str, req: SessionRequest, request: Request) -> dict[str, str]:
    return await _ops(request).create_session(sid, req)


@router.delete("/sandboxes/{sid}/sessions/{name}", tags=["sessions"])
async def close_session(sid: str, name: str, request: Request) -> dict[str, str]:
    return await _ops(request).close_session(sid, name)


@router.post("/sandboxes/{sid}/commands", response_model=CommandResult, tags=["commands"])
async def run_command(sid: str, req: RunRequest, request: Request) -> Response:
    result = await _ops(request).run(sid, req)  # the hot path: serialize once, skip re-validation
    return Response(result.model_dump_json(), media_type="application/json")


@router.post("/sandboxes/{sid}/commands/stream", tags=["commands"],
             responses={200: {"content": {"application/x-ndjson": {}}}})  # fmt: skip
async def stream_command(sid: str, req: RunRequest, request: Request) -> StreamingResponse:
    """NDJSON: ``{"type": "chunk", "stream", "data"}`` lines as output arrives, then ``{"type": "result", ...}``."""
    events = await _ops(request).run_stream(sid, req)

    async def lines() -> AsyncIterator[bytes]:
        async for event in events:
            yield json.dumps(event).encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/sandboxes/{sid}/jobs", status_code=201, response_model=JobInfo, tags=["jobs"])
async def start_job(sid: str, req: JobRequest, request: Request) -> JobInfo:
    return await _ops(request).start_job(sid, req)


@router.get("/sandboxes/{sid}/jobs", response_model=JobList, tags=["jobs"])
async def list_jobs(sid: str, request: Request) -> JobList:
    return await _ops(request).list_jobs(sid)


@router.get("/sandboxes/{sid}/jobs/{job_id}", response_model=JobInfo, tags=["jobs"])
async def get_job(sid: str, job_id: str, request: Request) -> JobInfo:
    return await _ops(request).job(sid, job_id)


@router.post("/sandboxes/{sid}/jobs/{job_id}/wait", response_model=JobInfo, tags=["jobs"])
async def wait_job(sid: str, job_id: str, request: Request,
                   timeout: Annotated[float, Query(gt=0, le=24 * 3600)] = 60.0) -> JobInfo:  # fmt: skip
    return await _ops(request).wait_job(sid, job_id, timeout)


@router.get("/sandboxes/{sid}/jobs/{job_id}/logs", response_model=JobLogs, tags=["jobs"])
async def job_logs(
    sid: str, job_id: str, request: Request, stream: Literal["stdout", "stderr"] = "stdout",
    offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[Optional[int], Query(ge=1, le=1 << 30)] = None,
) -> JobLogs:  # fmt: skip
    return await _ops(request).job_logs(sid, job_id, stream, offset, limit)


@router.post("/sandboxes/{sid}/jobs/{job_id}/kill", response_model=JobInfo, tags=["jobs"])
async def kill_job(sid: str, job_id: str, request: Request) -> JobInfo:
    return await _ops(request).kill_job(sid, job_id)


@router.get("/sandboxes/{sid}/files", response_model=FileList, tags=["files"])
async def list_files(sid: str, request: Request, path: Path = ".", recursive: bool = False) -> FileList:
    return await _ops(request).list_files(sid, path, recursive)


@router.delete("/sandboxes/{sid}/files", response_model=TransferResult, tags=["files"])
async def delete_file(sid: str, request: Request, path: Path, recursive: bool = False) -> TransferResult:
    return await _ops(request).delete_file(sid, path, recursive)


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


@router.put("/sandboxes/{sid}/files/content", response_model=TransferResult, tags=["files"],
            openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})  # fmt: skip
async def upload_file(sid: str, request: Request, path: Path,
                      mode: Annotated[Optional[int], Query(ge=0, le=0o7777)] = None) -> TransferResult:  # fmt: skip
    """The body is the file's bytes, streamed to the sandbox as they arrive."""
    return await _ops(request).upload(sid, path, _body(request), False, mode)


@router.get("/sandboxes/{sid}/files/content", tags=["files"],
            responses={200: {"content": {"application/octet-stream": {}}}})  # fmt: skip
async def download_file(sid: str, request: Request, path: Path) -> StreamingResponse:
    chunks = await _ops(request).download(sid, path, False)
    return StreamingResponse(chunks, media_type="application/octet-stream")


@router.put("/sandboxes/{sid}/files/tar", response_model=TransferResult, tags=["files"],
            openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})  # fmt: skip
async def upload_tar(sid: str, request: Request, path: Path) -> TransferResult:
    """The body is a tar stream, extracted under ``path`` (members escaping it are refused)."""
    return await _ops(request).upload(sid, path, _body(request), True)


@router.get("/sandboxes/{sid}/files/tar", tags=["files"], responses={200: {"content": {"application/x-tar": {}}}})
async def download_tar(sid: str, request: Request, path: Path) -> StreamingResponse:
    chunks = await _ops(request).download(sid, path, True)
    return StreamingResponse(chunks, media_type="application/x-tar")
