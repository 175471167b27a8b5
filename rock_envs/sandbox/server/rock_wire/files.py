"""ROCK's file routes: ``write_file``, ``read_file`` (text) and ``upload`` (multipart, streamed to the
sandbox; not held to the JSON body cap). Paths are absolute in the sandbox's own root view."""

from __future__ import annotations

from typing import Any, AsyncIterator

from fastapi import Request
from starlette.datastructures import UploadFile

from ... import models as m
from ...errors import SandboxFileNotFoundError
from .auth import authorize
from .commands import _sandbox
from .envelope import WireError, enveloped
from .lifecycle import registry, router
from .models import ReadFile, WriteFile

MAX_READ = 64 << 20


@router.post("/write_file")
@enveloped("write_file")
async def write_file(request: Request) -> Any:
    req, sid = await _sandbox(request, "write_file", WriteFile)
    await request.app.state.api.write_file(sid, m.UploadRequest(path=req.path), req.content.encode("utf-8"))
    return {"success": True, "message": ""}


@router.post("/read_file")
@enveloped("read_file")
async def read_file(request: Request) -> Any:
    """A missing file reads as ``""``, as in ROCK (the client cannot take a ``Failed`` here)."""
    req, sid = await _sandbox(request, "read_file", ReadFile)
    try:
        chunks = await request.app.state.api.download(sid, m.DownloadRequest(path=req.path))
    except SandboxFileNotFoundError:
        return {"content": ""}
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > MAX_READ:
            raise WireError(f"`read_file`: {req.path!r} is over {MAX_READ >> 20} MiB; read it in parts with `execute`.")
    try:
        return {"content": bytes(data).decode(req.encoding or "utf-8", req.errors or "strict")}
    except (LookupError, UnicodeDecodeError) as exc:
        raise WireError(f"`read_file`: {req.path!r} does not decode ({exc}); pass `encoding`/`errors`.") from None


@router.post("/upload")
@enveloped("upload")
async def upload(request: Request) -> Any:
    authorize(request, "upload")
    try:
        form = await request.form(max_files=1, max_fields=32)
    except Exception as exc:  # not multipart, or cut off (a body over the server's upload cap)
        raise WireError(f"`upload`: could not read the multipart form: {exc}") from None
    file, target, rock_id = form.get("file"), form.get("target_path"), form.get("sandbox_id")
    if not isinstance(file, UploadFile) or not isinstance(target, str) or not isinstance(rock_id, str):
        raise WireError("`upload`: expected multipart fields `file` (a file), `target_path` and `sandbox_id`.")
    sid = await registry(request).sid(rock_id, "upload")

    async def chunks() -> AsyncIterator[bytes]:
        while data := await file.read(1 << 20):
            yield data

    try:
        result = await request.app.state.api.upload(sid, m.UploadRequest(path=target), chunks())
    finally:
        await file.close()
    return {"success": True, "message": f"{result.size} bytes written", "file_name": file.filename or ""}
