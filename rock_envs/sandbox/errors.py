"""Errors of the sandbox layer. Each also subclasses the builtin it resembles::

    RockEnvsError
    └── SandboxError                                       any sandbox failure (HTTP 500 only for bugs)
        ├── SandboxNotFoundError(SandboxError, KeyError)      404: unknown sandbox id
        ├── SessionNotFoundError(SandboxError, KeyError)      404: unknown session name
        ├── JobNotFoundError(SandboxError, KeyError)          404: unknown job id
        ├── SnapshotNotFoundError(SandboxError, KeyError)     404: unknown (or deleted) sandbox snapshot
        ├── CallNotFoundError(SandboxError, KeyError)         404: no waiting model call by that id
        ├── SandboxFileNotFoundError(SandboxError, FileNotFoundError)  404: no such path in the sandbox
        ├── SessionExistsError(SandboxError, ValueError)      409: a session name already taken
        ├── InvalidRequestError(SandboxError, ValueError)     422: a request that makes no sense
        ├── PathOutsideSandboxError(SandboxError, PermissionError)  403: `..`, absolute or symlinked escape
        ├── AuthenticationError(SandboxError, PermissionError)     401: no token or a wrong one
        ├── PayloadTooLargeError(SandboxError, ValueError)    413: a body over the server's limit
        ├── SandboxLimitError(SandboxError, RuntimeError)     429: too many sandboxes
        ├── CommandTimeoutError(SandboxError, TimeoutError)   504: a wait's timeout passed
        ├── SandboxStartError(SandboxError, RuntimeError)     503: the runtime could not start a sandbox
        │   └── ImageNotFoundError(SandboxStartError, LookupError)  503: its image is not in the engine
        ├── SandboxDiedError(SandboxError, RuntimeError)      410: the sandbox's agent is gone
        ├── CheckpointUnavailableError(SandboxError, RuntimeError)  501: process checkpoints (CRIU) cannot
        │                                                     work here; the message says why
        ├── SandboxClosedError(SandboxError, RuntimeError)    a call on a stopped `Sandbox`
        ├── AgentError(SandboxError, RuntimeError)            500: a bug inside the agent (carries its traceback)
        ├── ServerUnreachableError(SandboxError, ConnectionError)  the SDK found no server at ``base_url``
        └── StoreUnreachableError(SandboxError, ConnectionError)   503: a split server's Redis did not answer

The agent and the server send errors as ``{"type": name, "message": text}``; :func:`from_wire`
turns them back into these classes on the caller's side, so embedded and server mode raise alike.
Messages name the call, say what was expected and what came, and end with the fix.
"""

from __future__ import annotations

from rock_envs.core.errors import RockEnvsError


class SandboxError(RockEnvsError):
    """The root of every sandbox error."""

    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # KeyError subclasses would repr() the message
        return self.message


class SandboxNotFoundError(SandboxError, KeyError):
    status = 404


class SessionNotFoundError(SandboxError, KeyError):
    status = 404


class JobNotFoundError(SandboxError, KeyError):
    status = 404


class CallNotFoundError(SandboxError, KeyError):
    status = 404


class SnapshotNotFoundError(SandboxError, KeyError):
    status = 404


class SandboxFileNotFoundError(SandboxError, FileNotFoundError):
    status = 404


class SessionExistsError(SandboxError, ValueError):
    status = 409


class InvalidRequestError(SandboxError, ValueError):
    status = 422


class PathOutsideSandboxError(SandboxError, PermissionError):
    status = 403


class AuthenticationError(SandboxError, PermissionError):
    status = 401


class PayloadTooLargeError(SandboxError, ValueError):
    status = 413


class SandboxLimitError(SandboxError, RuntimeError):
    """``cap`` names the cap that refused (``max_sandboxes``, ``max_envs_per_token``, ...), for metrics."""

    status = 429

    def __init__(self, message: str, cap: str = "other"):
        super().__init__(message)
        self.cap = cap


class CommandTimeoutError(SandboxError, TimeoutError):
    status = 504


class SandboxStartError(SandboxError, RuntimeError):
    status = 503


class ImageNotFoundError(SandboxStartError, LookupError):
    """The sandbox's image is not in the local engine (rock-envs never pulls)."""


class SandboxDiedError(SandboxError, RuntimeError):
    status = 410


class SandboxClosedError(SandboxError, RuntimeError):
    status = 409


class CheckpointUnavailableError(SandboxError, RuntimeError):
    status = 501


class AgentError(SandboxError, RuntimeError):
    status = 500


class ServerUnreachableError(SandboxError, ConnectionError):
    status = 503


class StoreUnreachableError(SandboxError, ConnectionError):
    """The shared store of a control plane and its data replicas (Redis) did not answer."""

    status = 503


_BY_NAME: dict[str, type[SandboxError]] = {
    cls.__name__: cls
    for cls in (
        SandboxError,
        SandboxNotFoundError,
        SessionNotFoundError,
        JobNotFoundError,
        CallNotFoundError,
        SnapshotNotFoundError,
        CheckpointUnavailableError,
        SandboxFileNotFoundError,
        SessionExistsError,
        InvalidRequestError,
        PathOutsideSandboxError,
        AuthenticationError,
        PayloadTooLargeError,
        SandboxLimitError,
        CommandTimeoutError,
        SandboxStartError,
        ImageNotFoundError,
        SandboxDiedError,
        SandboxClosedError,
        AgentError,
        StoreUnreachableError,
    )
}


def from_wire(type_name: str, message: str) -> SandboxError:
    """The error named ``type_name`` (``SandboxError`` if the name is unknown) with ``message``."""
    return _BY_NAME.get(type_name, SandboxError)(message)
