"""ROCK's envelope: ``{"status", "message", "error", "result"}``, and every failure as one of its ``Failed``.

rl-rock's client turns any non-2xx answer into a bare ``httpx`` error, so every expected failure is
HTTP 200 with ``status: "Failed"`` and, in ``result``, ROCK's code: 4000 for a bad request (the
client raises ``BadRequestRockError``), 5000 for a failure of the server or a sandbox
(``InternalServerRockError``), 6000 for a command that failed (``CommandRockError``).
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any, Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from ...errors import (
    AuthenticationError,
    InvalidRequestError,
    PathOutsideSandboxError,
    PayloadTooLargeError,
    SandboxError,
    SandboxFileNotFoundError,
    SandboxLimitError,
    SandboxNotFoundError,
    SessionExistsError,
    SessionNotFoundError,
)

BAD_REQUEST, INTERNAL_ERROR, COMMAND_ERROR = 4000, 5000, 6000
log = logging.getLogger("rock_envs.sandbox.server.rock_wire")


class WireError(Exception):
    """A failure to answer as ``Failed`` with ROCK's ``code`` (and the command's exit code, if any)."""

    def __init__(self, message: str, code: int = BAD_REQUEST, exit_code: int | None = None):
        super().__init__(message)
        self.message, self.code, self.exit_code = message, code, exit_code


def success(result: Any) -> JSONResponse:
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    return JSONResponse({"status": "Success", "message": None, "error": None, "result": result})


def failed(op: str, message: str, code: int = BAD_REQUEST, exit_code: int | None = None) -> JSONResponse:
    result = {"code": code, "exit_code": exit_code, "failure_reason": message}
    return JSONResponse({"status": "Failed", "message": f"{op} failed", "error": message, "result": result})


_BAD_REQUEST = (
    InvalidRequestError,
    PathOutsideSandboxError,
    SandboxFileNotFoundError,
    SandboxNotFoundError,
    SessionNotFoundError,
    SessionExistsError,
    PayloadTooLargeError,
    SandboxLimitError,
    AuthenticationError,
)


def code_of(exc: SandboxError) -> int:
    return BAD_REQUEST if isinstance(exc, _BAD_REQUEST) else INTERNAL_ERROR


def describe(exc: ValidationError, op: str) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:10]]
    return f"`{op}`: invalid request: " + "; ".join(parts) + "; see ROCK's request model for this call."


async def json_body(request: Request, op: str) -> dict[str, Any]:
    """The request's JSON object, or a :class:`WireError` saying what was wrong with it."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise WireError(f"`{op}`: the body is not JSON ({exc}); send a JSON object.") from None
    if not isinstance(body, dict):
        raise WireError(f"`{op}`: expected a JSON object, got {type(body).__name__}.")
    return body


def parse(model: type[Any], data: dict[str, Any], op: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise WireError(describe(exc, op)) from None


Handler = Callable[..., Awaitable[Any]]


def enveloped(op: str) -> Callable[[Handler], Handler]:
    """Wrap a route: its return value becomes a ``Success`` envelope, every error a ``Failed`` one."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def route(*args: Any, **kwargs: Any) -> JSONResponse:
            try:
                result = await handler(*args, **kwargs)
            except WireError as exc:
                return failed(op, exc.message, exc.code, exc.exit_code)
            except SandboxError as exc:
                return failed(op, exc.message, code_of(exc))
            except Exception as exc:  # a bug: say so in the envelope, keep the traceback in the log
                log.exception("rock wire `%s` failed", op)
                return failed(op, f"`{op}`: internal error {type(exc).__name__}: {exc}", INTERNAL_ERROR)
            return result if isinstance(result, JSONResponse) else success(result)

        return route

    return wrap
