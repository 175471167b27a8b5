"""The SDK against ``rock-envs serve``: one pooled ``httpx.AsyncClient``, errors rebuilt from the JSON body."""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, TypeVar

import httpx
from pydantic import BaseModel

from ..config import SandboxConfig
from ..errors import AuthenticationError, SandboxError, from_wire
from ..models import (
    CommandResult,
    FileList,
    JobInfo,
    JobList,
    JobLogs,
    JobRequest,
    RunRequest,
    SandboxInfo,
    SandboxSpec,
    SessionRequest,
    TransferResult,
)
from .backend import Backend
from .mux import WorkerMux
from .worker import WorkerChannel

M = TypeVar("M", bound=BaseModel)


async def raise_for(response: httpx.Response, call: str) -> None:
    if response.status_code < 400:
        return
    await response.aread()
    try:
        err = response.json()["error"]
        exc = from_wire(err["type"], err["message"])
    except (ValueError, KeyError, TypeError):
        exc = SandboxError(f"`{call}`: the server answered {response.status_code}: {response.text[:500]}")
    if response.status_code == 401 and not isinstance(exc, AuthenticationError):
        exc = AuthenticationError(exc.message)
    raise exc


class HttpBackend(Backend):
    def __init__(self, config: SandboxConfig, client: httpx.AsyncClient | None = None):
        assert config.base_url is not None
        self.config = config
        token = config.resolve_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = config.base_url.rstrip("/")
        self.own_client = client is None
        self.client = client or httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(config.request_timeout),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )  # fmt: skip
        self.headers = headers
        self.mux: WorkerMux | None = None

    def _url(self, suffix: str = "") -> str:
        return f"/sandboxes/{self.sid}{suffix}"

    async def _json(self, method: str, url: str, call: str, model: type[M] | None = None, *,
                    body: BaseModel | None = None, params: dict[str, Any] | None = None,
                    extra_timeout: float = 0.0) -> Any:  # fmt: skip
        timeout = self.config.request_timeout + extra_timeout
        content = body.model_dump_json(exclude_none=True).encode() if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else None
        try:
            response = await self.client.request(method, url, content=content, params=params, headers=headers,
                                                 timeout=timeout)  # fmt: skip
        except httpx.TransportError as exc:
            raise SandboxError(f"`{call}`: cannot reach the sandbox server at {self.base_url} ({exc!r}); "
                               "is `rock-envs serve` running?") from exc  # fmt: skip
        await raise_for(response, call)
        return model.model_validate_json(response.content) if model else response.json()

    async def create(self, spec: SandboxSpec, timeout: float) -> SandboxInfo:
        info: SandboxInfo = await self._json("POST", "/sandboxes", "start", SandboxInfo, body=spec, extra_timeout=timeout)
        self.sid = info.id
        return info

    async def info(self) -> SandboxInfo:
        return await self._json("GET", self._url(), "status", SandboxInfo)  # type: ignore[no-any-return]

    async def delete(self) -> None:
        await self._json("DELETE", self._url(), "stop")

    async def create_session(self, req: SessionRequest) -> None:
        await self._json("POST", self._url("/sessions"), "create_session", body=req)

    async def close_session(self, name: str) -> None:
        await self._json("DELETE", self._url(f"/sessions/{name}"), "close_session")

    async def run(self, req: RunRequest) -> CommandResult:
        return await self._json("POST", self._url("/commands"), "arun", CommandResult, body=req,  # type: ignore[no-any-return]
                                extra_timeout=req.timeout)  # fmt: skip

    async def run_stream(self, req: RunRequest) -> AsyncIterator[dict[str, Any]]:  # type: ignore[override]
        timeout = httpx.Timeout(self.config.request_timeout + req.timeout)
        async with self.client.stream("POST", self._url("/commands/stream"), timeout=timeout,
                                      content=req.model_dump_json(exclude_none=True).encode(),
                                      headers={"content-type": "application/json"}) as response:  # fmt: skip
            await raise_for(response, "stream")
            async for line in response.aiter_lines():
                if line:
                    yield json.loads(line)

    async def start_job(self, req: JobRequest) -> JobInfo:
        return await self._json("POST", self._url("/jobs"), "run_job", JobInfo, body=req)  # type: ignore[no-any-return]

    async def job(self, job_id: str) -> JobInfo:
        return await self._json("GET", self._url(f"/jobs/{job_id}"), "poll_job", JobInfo)  # type: ignore[no-any-return]

    async def list_jobs(self) -> JobList:
        return await self._json("GET", self._url("/jobs"), "list_jobs", JobList)  # type: ignore[no-any-return]

    async def wait_job(self, job_id: str, timeout: float) -> JobInfo:
        return await self._json("POST", self._url(f"/jobs/{job_id}/wait"), "wait_job", JobInfo,  # type: ignore[no-any-return]
                                params={"timeout": timeout}, extra_timeout=timeout)  # fmt: skip

    async def job_logs(self, job_id: str, stream: str, offset: int, limit: int | None) -> JobLogs:
        params: dict[str, Any] = {"stream": stream, "offset": offset}
        if limit is not None:
            params["limit"] = limit
        return await self._json("GET", self._url(f"/jobs/{job_id}/logs"), "job_logs", JobLogs, params=params)  # type: ignore[no-any-return]

    async def kill_job(self, job_id: str) -> JobInfo:
        return await self._json("POST", self._url(f"/jobs/{job_id}/kill"), "kill_job", JobInfo)  # type: ignore[no-any-return]

    async def write_file(self, path: str, data: bytes, mode: int | None) -> TransferResult:
        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.upload(path, one(), False, mode)

    async def list_files(self, path: str, recursive: bool) -> FileList:
        return await self._json("GET", self._url("/files"), "list_files", FileList,  # type: ignore[no-any-return]
                                params={"path": path, "recursive": recursive})  # fmt: skip

    async def delete_file(self, path: str, recursive: bool) -> None:
        await self._json("DELETE", self._url("/files"), "delete_file", params={"path": path, "recursive": recursive})

    async def upload(self, path: str, chunks: AsyncIterator[bytes], tar: bool, mode: int | None) -> TransferResult:
        params: dict[str, Any] = {"path": path}
        if mode is not None:
            params["mode"] = mode
        url = self._url("/files/tar" if tar else "/files/content")
        response = await self.client.put(url, params=params, content=chunks, timeout=None)
        await raise_for(response, "upload")
        return TransferResult.model_validate_json(response.content)

    async def download(self, path: str, tar: bool) -> AsyncIterator[bytes]:
        url = self._url("/files/tar" if tar else "/files/content")
        request = self.client.build_request("GET", url, params={"path": path}, timeout=None)
        response = await self.client.send(request, stream=True)
        try:
            await raise_for(response, "download")
        except BaseException:
            await response.aclose()
            raise

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:
                await response.aclose()

        return chunks()

    async def open_worker(self, argv: list[str], env: dict[str, str] | None) -> WorkerChannel:
        if self.mux is None:
            self.mux = WorkerMux(self.base_url, self.headers)
        return await self.mux.open(self.sid, argv, env)

    async def close(self) -> None:
        if self.mux is not None:
            await self.mux.close()
            self.mux = None
        if self.own_client:
            await self.client.aclose()
