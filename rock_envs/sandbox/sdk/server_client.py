"""One HTTP client of ``rock-envs serve``: bearer token, one pooled connection, errors rebuilt from the body.

Everything that talks to a server over HTTP goes through it: the SDK (:class:`HttpSandboxAPI`), the
ModelService client, the remote backend and the CLI. An error answer comes back as the same
exception class the server raised (:func:`~rock_envs.sandbox.errors.from_wire` over
:class:`~rock_envs.sandbox.models.ErrorBody`); a server that cannot be reached is one message.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from ..errors import AuthenticationError, SandboxError, ServerUnreachableError, from_wire
from ..models import ErrorBody

M = TypeVar("M", bound=BaseModel)


def unreachable(call: str, base_url: str, exc: BaseException) -> str:
    return f"`{call}`: cannot reach the sandbox server at {base_url} ({exc!r}); is `rock-envs serve` running?"


async def raise_for(response: httpx.Response, call: str) -> None:
    """Raise the server's error (the class it named) for an answer of 400 or more; nothing otherwise."""
    if response.status_code < 400:
        return
    await response.aread()
    try:
        err = ErrorBody.model_validate_json(response.content).error
        exc = from_wire(err.type, err.message)
    except ValidationError:
        exc = SandboxError(f"`{call}`: the server answered {response.status_code}: {response.text[:500]}")
    if response.status_code == 401 and not isinstance(exc, AuthenticationError):
        exc = AuthenticationError(exc.message)
    raise exc


class ServerClient:
    """A pooled ``httpx.AsyncClient`` for one server. ``token=None`` reads ``$ROCK_ENVS_TOKEN`` or the
    token file (see :meth:`SandboxConfig.resolve_token`). ``aclose()`` closes the pool."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 60.0, max_connections: int = 64):
        from ..config import SandboxConfig

        self.base_url = base_url.rstrip("/")
        token = token or SandboxConfig(base_url=self.base_url).resolve_token()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=self.headers,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=min(16, max_connections)),
        )

    async def send(
        self,
        method: str,
        path: str,
        call: str,
        *,
        body: BaseModel | dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        content: Any = None,
        timeout: float | None = None,
        extra_timeout: float = 0.0,
    ) -> httpx.Response:
        """One request; raises the server's error, or :class:`ServerUnreachableError` naming ``call``.

        ``timeout=None`` waits ``self.timeout + extra_timeout``; a streamed ``content`` waits as long as it takes."""
        headers = None
        if isinstance(body, BaseModel):
            content, headers = body.model_dump_json(exclude_none=True).encode(), {"content-type": "application/json"}
        elif body is not None:
            content, headers = json.dumps(body).encode(), {"content-type": "application/json"}
        streamed = content is not None and not isinstance(content, (bytes, str))
        wait = None if streamed else timeout if timeout is not None else self.timeout + extra_timeout
        for attempt in (1, 2):
            try:
                response = await self.http.request(
                    method, path, content=content, params=_params(params), headers=headers, timeout=wait
                )
                break
            except httpx.RemoteProtocolError as exc:
                # The server closed a kept-alive connection as this request went out (its keep-alive
                # timeout): a request that changes nothing twice is safe to send again, once.
                if attempt == 2 or streamed or method not in ("GET", "HEAD", "DELETE", "PUT"):
                    raise ServerUnreachableError(unreachable(call, self.base_url, exc)) from exc
            except httpx.TransportError as exc:
                raise ServerUnreachableError(unreachable(call, self.base_url, exc)) from exc
        await raise_for(response, call)
        return response

    async def call(self, method: str, path: str, call: str, model: type[M], **kwargs: Any) -> M:
        """:meth:`send`, with the answer read as ``model``."""
        return model.model_validate_json((await self.send(method, path, call, **kwargs)).content)

    async def stream(
        self,
        method: str,
        path: str,
        call: str,
        *,
        body: BaseModel | None = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """A response whose body is read as it comes (the caller closes it); errors raise before any of it."""
        content = body.model_dump_json(exclude_none=True).encode() if body is not None else None
        headers = {"content-type": "application/json"} if body is not None else None
        request = self.http.build_request(
            method, path, params=_params(params), content=content, headers=headers, timeout=timeout
        )
        try:
            response = await self.http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise ServerUnreachableError(unreachable(call, self.base_url, exc)) from exc
        try:
            await raise_for(response, call)
        except BaseException:
            await response.aclose()
            raise
        return response

    async def aclose(self) -> None:
        await self.http.aclose()


def _params(params: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if params is None else {k: v for k, v in params.items() if v is not None}
