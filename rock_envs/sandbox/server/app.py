"""``create_app``: the sandbox server as a FastAPI app. No module globals: each app owns its manager."""

from __future__ import annotations

import secrets
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..cluster.store import SandboxStore
from ..errors import AuthenticationError, PayloadTooLargeError, SandboxError, SandboxLimitError
from ..local import LocalSandboxAPI
from ..manager import SandboxManager
from ..model_service.routes import AgentWire
from ..model_service.routes import trainer_router as model_trainer_router
from ..models import PoolRequest
from . import rock_wire
from .dashboard import api_router as dashboard_api
from .dashboard import page_router as dashboard_page
from .limits import Limits, Quota
from .observe import RequestMetrics, ServerMetrics
from .observe import router as metrics_router
from .rock_wire.envelope import failed
from .routes import router
from .workers import router as workers_router

MAX_BODY = 16 * 1024 * 1024  # JSON requests
MAX_UPLOAD = 8 * 1024 * 1024 * 1024  # streamed file and tar uploads


ROCK_UPLOAD = "/apis/envs/sandbox/v1/upload"


def _error(status: int, type_name: str, message: str, path: str = "") -> JSONResponse:
    if path.startswith(rock_wire.PREFIX):  # ROCK's clients need HTTP 200 and a Failed envelope
        return failed(path.rsplit("/", 1)[-1], message)
    return JSONResponse({"error": {"type": type_name, "message": message}}, status_code=status)


class BodyLimit:
    """413 for a body over the limit, by its Content-Length or by counting a chunked one as it streams."""

    def __init__(self, app: ASGIApp, max_body: int, max_upload: int):
        self.app, self.max_body, self.max_upload = app, max_body, max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        upload = scope["method"] == "PUT" and path.endswith(("/files/content", "/files/tar")) or path == ROCK_UPLOAD
        limit = self.max_upload if upload else self.max_body
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    response = _error(
                        413,
                        "PayloadTooLargeError",
                        f"request body of {int(value)} bytes is over "
                        f"this server's limit of {limit} bytes; send less or raise the limit.",
                        path,
                    )
                    return await response(scope, receive, send)
        if not upload:  # small JSON bodies: read up to the limit here, answer 413 past it
            chunks, seen, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                seen += len(chunks[-1])
                more = message.get("more_body", False)
                if seen > limit:
                    response = _error(
                        413,
                        "PayloadTooLargeError",
                        f"request body is over this server's limit of {limit} bytes; send less or raise the limit.",
                        path,
                    )
                    return await response(scope, receive, send)
            body = b"".join(chunks)
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            return await self.app(scope, replay, send)
        seen = 0

        async def counted() -> Message:  # streamed uploads: count as they flow to the sandbox
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLargeError(
                    f"request body is over this server's limit of {limit} bytes; send less or raise the limit."
                )
            return message

        await self.app(scope, counted, send)


def token_checks(token: str, extra_tokens: tuple[str, ...] = ()) -> tuple[Any, Any]:
    """``check_token(header) -> bool`` and the FastAPI dependency that raises 401 without one."""

    def check_token(header: str) -> bool:
        scheme, _, given = header.partition(" ")
        given_bytes = given.strip().encode()
        return scheme.lower() == "bearer" and any(
            [secrets.compare_digest(given_bytes, t.encode()) for t in (token, *extra_tokens)]
        )

    async def require_token(request: HTTPConnection) -> None:
        if not check_token(request.headers.get("authorization", "")):
            raise AuthenticationError(
                "missing or wrong bearer token; send `Authorization: Bearer <token>` "
                "with the token `rock-envs serve` printed (also in its token file)."
            )

    return check_token, require_token


def install_error_handlers(app: FastAPI, on_refusal: Any = None) -> None:
    """Every error as ``{"error": {"type", "message"}}`` with its status; ``on_refusal(cap)`` counts 429s."""

    @app.exception_handler(SandboxError)
    async def sandbox_error(request: Request, exc: SandboxError) -> JSONResponse:
        if isinstance(exc, SandboxLimitError) and on_refusal is not None:
            on_refusal(exc.cap)
        return _error(exc.status, type(exc).__name__, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:10]:
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg')}")
        return _error(422, "InvalidRequestError", "invalid request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "HTTPError", str(exc.detail))


def create_app(
    token: str | None = None,
    manager: SandboxManager | None = None,
    runtime_dir: str | None = None,
    runtimes: tuple[str, ...] | None = None,
    max_body: int = MAX_BODY,
    max_upload: int = MAX_UPLOAD,
    runtime_options: dict[str, dict[str, Any]] | None = None,
    limits: Limits | None = None,
    extra_tokens: tuple[str, ...] = (),
    pools: list[PoolRequest] | None = None,
    max_starting: int | None = None,
    rock: rock_wire.RockWireConfig | None = None,
    metrics_public: bool = False,
    metrics: bool = True,
    own_manager: bool = True,
    store: SandboxStore | None = None,
    cluster: dict[str, Any] | None = None,
) -> FastAPI:
    """A sandbox server app. ``token=None`` generates one (read it from ``app.state.token``).

    ``pools`` are started before the server answers (a pool that cannot start, e.g. for a missing
    image, stops the server with that error); ``max_starting`` caps sandboxes started at once.

    ``extra_tokens`` are accepted too (each its own holder for the per-token caps of ``limits``).
    ``rock`` configures ROCK's wire (``/apis/...``; see :mod:`.rock_wire`), which every app speaks.
    ``GET /metrics`` (Prometheus; see :mod:`.observe`) needs the token unless ``metrics_public``;
    ``metrics=False`` serves no ``/metrics`` and times no requests (what benchmarks compare against).
    ``own_manager=False``: the app never closes ``manager`` (an embedded one it only looks at).
    ``store``: where the manager publishes its sandboxes (a Redis one for a control plane; default in
    memory); ``cluster`` is what ``GET /cluster`` tells data replicas (``{"role", "store", "namespace"}``).
    """
    token = token or secrets.token_urlsafe(32)
    manager = manager or SandboxManager(
        runtime_dir=runtime_dir,
        allowed_runtimes=runtimes,
        runtime_options=runtime_options,
        max_starting=max_starting,
        store=store,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await manager.start()
        try:
            for pool in pools or ():
                await manager.create_pool(pool)
            yield
        finally:
            await rock_wire.close(app)
            if own_manager:
                await manager.close()
                await manager.store.aclose()

    check_token, require_token = token_checks(token, extra_tokens)
    app = FastAPI(title="rock-envs sandbox server", version="1", lifespan=lifespan)
    app.state.token = token
    app.state.manager = manager
    app.state.api = LocalSandboxAPI(manager)  # what every route calls; the lifespan owns the manager
    app.state.check_token = check_token
    app.state.quota = Quota(limits or Limits(), manager)
    app.state.metrics = ServerMetrics(app, manager.metrics)
    app.state.metrics_public = metrics_public

    install_error_handlers(app, on_refusal=lambda cap: app.state.metrics.refusals.labels(cap).inc())
    app.state.cluster = cluster

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, Any]:
        return {"ok": True, "sandboxes": len(manager.sandboxes)}

    @app.get("/cluster", tags=["health"], dependencies=[Depends(require_token)])
    async def cluster_info() -> dict[str, Any]:
        """What a data replica needs to serve this server's sandboxes: the store it reads them from."""
        return cluster or {"role": "single"}

    if metrics:
        app.include_router(metrics_router)  # checks the token itself, unless metrics_public
    app.include_router(router, dependencies=[Depends(require_token)])
    app.include_router(dashboard_page)  # the page and its assets hold no data: public
    app.include_router(dashboard_api, dependencies=[Depends(require_token)])
    app.include_router(workers_router)  # checks the token itself: WebSockets bypass exception handlers
    app.include_router(model_trainer_router, dependencies=[Depends(require_token)])
    rock_wire.mount(app, rock or rock_wire.RockWireConfig())
    if metrics:
        app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    app.add_middleware(BodyLimit, max_body=max_body, max_upload=max_upload)
    # Outermost: the agents' OpenAI-compatible /v1/* (a sandbox's own key, checked by the hub).
    requests = app.state.metrics.requests

    def observe(method: str, seconds: float) -> None:
        requests.labels("/v1/{rest:path}", method).observe(seconds)

    app.add_middleware(AgentWire, hub=lambda: manager.models, max_body=max_body, observe=observe if metrics else None)
    return app
