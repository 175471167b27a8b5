"""Every error rock-envs raises on purpose.

Each one also subclasses the builtin it resembles, so callers can catch either::

    RockEnvsError
    ├── UnknownEnvError(RockEnvsError, KeyError)         an id no source knows; names the closest ids
    ├── EnvArgumentError(RockEnvsError, TypeError)       bad kwargs for an env, or a bad make_vec argument
    ├── MissingDependencyError(RockEnvsError, ImportError)  an env needs data or a package not installed
    ├── ActionError(RockEnvsError, ValueError)           wrong number or type of actions
    ├── EnvClosedError(RockEnvsError, RuntimeError)      a call after close()
    ├── CallOrderError(RockEnvsError, RuntimeError)      step_wait without step_async, and the like
    ├── RemoteError(RockEnvsError, RuntimeError)         an exception raised in a worker; carries the
    │                                                    remote type, message and traceback
    ├── WorkerDiedError(RockEnvsError, RuntimeError)     a worker process/container/actor went away
    ├── WorkerTimeoutError(RockEnvsError, TimeoutError)  a call's timeout passed; names the env ids
    ├── BackendUnavailableError(RockEnvsError, RuntimeError)  a backend that cannot run here (no engine...)
    ├── RemoteBackendError(RockEnvsError, ConnectionError)  the sandbox server of backend="remote" stayed
    │                                                    away, or refused to make or reopen a worker
    ├── CodeVersionError(RockEnvsError, RuntimeError)    a factory pickled by value under another Python
    ├── ImageBuildError(RockEnvsError, RuntimeError)     the container image cannot be built here; says why
    └── SandboxError (rock_envs.sandbox.errors)          every failure of the sandbox layer, its own tree

The sandbox agent's framing error (``WireError``) never leaves the sandbox layer: a peer that breaks
the framing is a dead agent, raised as ``SandboxDiedError``.

Messages name the call, say what was expected and what came, and end with the fix.
"""

from __future__ import annotations


class RockEnvsError(Exception):
    """The root of every error rock-envs raises on purpose."""


class UnknownEnvError(RockEnvsError, KeyError):
    def __init__(self, env_id: str, suggestions: list[str] | tuple[str, ...] = ()):
        self.env_id = env_id
        self.suggestions = list(suggestions)
        hint = f" Did you mean {', '.join(repr(s) for s in self.suggestions)}?" if self.suggestions else ""
        self.message = (
            f"`rock_envs.make`: no env is registered under {env_id!r}.{hint} "
            "See `rock_envs.list_envs()` or `rock-envs list` for every known id."
        )
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class EnvArgumentError(RockEnvsError, TypeError):
    pass


class MissingDependencyError(RockEnvsError, ImportError):
    pass


class ActionError(RockEnvsError, ValueError):
    pass


class EnvClosedError(RockEnvsError, RuntimeError):
    pass


class CallOrderError(RockEnvsError, RuntimeError):
    pass


class RemoteError(RockEnvsError, RuntimeError):
    """An exception raised inside a worker, carried back with its type, message and traceback."""

    def __init__(self, type_name: str, message: str, traceback: str, where: str = "worker"):
        self.type_name = type_name
        self.remote_message = message
        self.remote_traceback = traceback
        super().__init__(f"{type_name} in {where}: {message}\n--- remote traceback ---\n{traceback}")


class WorkerDiedError(RockEnvsError, RuntimeError):
    pass


class WorkerTimeoutError(RockEnvsError, TimeoutError):
    def __init__(self, message: str, env_ids: list[int] | tuple[int, ...] = ()):
        self.env_ids = list(env_ids)
        super().__init__(message)


class BackendUnavailableError(RockEnvsError, RuntimeError):
    pass


class RemoteBackendError(RockEnvsError, ConnectionError):
    """The sandbox server could not be reached, or refused to make or reopen a worker."""


class CodeVersionError(RockEnvsError, RuntimeError):
    """Code pickled by value under one Python version was loaded under another."""


class ImageBuildError(RockEnvsError, RuntimeError):
    """The image cannot be built here; the message says why and what to do."""
