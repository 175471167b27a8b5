"""``create_data_app``: a data replica (``rock-envs serve --role data --control URL``).

The same routes as the server for exec, sessions, files, status, jobs and env frames (``/workers``),
each one line over a :class:`~rock_envs.sandbox.cluster.replica.ReplicaSandboxAPI`, which finds
sandboxes in the control plane's store and talks to their agents itself. Lifecycle routes answer
with an error naming the control plane; ModelService routes are forwarded to it
(:mod:`.model_forward`). No manager, no sandboxes of its own: killing a replica loses nothing but
the calls it had in flight.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import httpx
from fastapi import Depends, FastAPI

from ..cluster.redis_store import RedisStore
from ..cluster.replica import ReplicaSandboxAPI
from ..errors import AuthenticationError, InvalidRequestError, ServerUnreachableError
from . import model_forward
from .app import MAX_BODY, MAX_UPLOAD, BodyLimit, install_error_handlers, token_checks
from .limits import Limits, Quota
from .observe import CommandHistory, RelayCounts
from .routes import router
from .workers import router as workers_router


def create_data_app(
    control_url: str,
    token: str,
    store_url: str,
    namespace: str = "rock-envs",
    extra_tokens: tuple[str, ...] = (),
    max_body: int = MAX_BODY,
    max_upload: int = MAX_UPLOAD,
) -> FastAPI:
    """A data replica of the control plane at ``control_url``, reading ``store_url`` (Redis) under
    ``namespace``; it accepts the control plane's ``token`` (and ``extra_tokens``)."""
    control_url = control_url.rstrip("/")
    check_token, require_token = token_checks(token, extra_tokens)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        api = ReplicaSandboxAPI(await RedisStore.connect(store_url, namespace, watch=True), control_url)
        api.start()
        app.state.api = api
        app.state.control_http = model_forward.client(control_url)
        try:
            yield
        finally:
            await app.state.control_http.aclose()
            await api.aclose()

    app = FastAPI(title="rock-envs data replica", version="1", lifespan=lifespan)
    app.state.token, app.state.check_token = token, check_token
    app.state.relay, app.state.history = RelayCounts(), CommandHistory()
    app.state.quota = Quota(Limits())  # creates are the control plane's: nothing to count here
    install_error_handlers(app)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, Any]:
        return {"ok": True, "role": "data", "control": control_url}

    @app.get("/cluster", tags=["health"], dependencies=[Depends(require_token)])
    async def cluster_info() -> dict[str, Any]:
        return {"role": "data", "control": control_url}

    app.include_router(router, dependencies=[Depends(require_token)])
    app.include_router(workers_router)  # checks the token itself
    app.include_router(model_forward.router)  # the control plane checks keys and tokens
    app.add_middleware(BodyLimit, max_body=max_body, max_upload=max_upload)
    return app


def discover(control_url: str, token: str, timeout: float = 10.0) -> dict[str, Any]:
    """The control plane's ``GET /cluster``: where its store is. Raises naming what is wrong."""
    url = control_url.rstrip("/") + "/cluster"
    try:
        answer = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout, trust_env=False)
    except httpx.TransportError as exc:
        raise ServerUnreachableError(
            f"`rock-envs serve --role data`: no control plane answers at {control_url} ({type(exc).__name__}); "
            "start `rock-envs serve --role control --redis URL` first, or fix `--control`."
        ) from exc
    if answer.status_code == 401:
        raise AuthenticationError(
            f"`rock-envs serve --role data`: the control plane at {control_url} refused the token; "
            "give the replica the control plane's token (`--token` or ROCK_ENVS_TOKEN)."
        )
    if answer.status_code != 200:
        raise InvalidRequestError(
            f"`rock-envs serve --role data`: {control_url} answered {answer.status_code} to GET /cluster; "
            "is it a rock-envs server started with `--role control`?"
        )
    found: dict[str, Any] = answer.json()
    if found.get("role") != "control":
        raise InvalidRequestError(
            f"`rock-envs serve --role data`: {control_url} is a {found.get('role')!r} server, not a control "
            "plane; start it with `rock-envs serve --role control --redis URL`."
        )
    return found
