"""Every error rock-envs raises on purpose.

Each one also subclasses the builtin it resembles, so callers can catch either::

    RockEnvsError
    ├── UnknownEnvError(RockEnvsError, KeyError)         an id no source knows; names the closest ids
    ├── EnvArgumentError(RockEnvsError, TypeError, ValueError)  bad kwargs for an env, or a bad make_vec
    │   │                                                argument
    │   └── SpaceMismatchError(..., RuntimeError)        envs of one vector env with different spaces
    ├── MissingDependencyError(RockEnvsError, ImportError)  an env needs data or a package not installed
    ├── ActionError(RockEnvsError, ValueError, TypeError)  wrong number or type of actions
    ├── EnvClosedError(RockEnvsError, RuntimeError)      a call after close() (and Gymnasium's
    │                                                    ClosedEnvironmentError)
    ├── CallOrderError(RockEnvsError, RuntimeError)      a call out of order:
    │   ├── NoCallPendingError                           a wait with nothing to wait for (and
    │   │                                                Gymnasium's NoAsyncCallError)
    │   └── CallPendingError                             a call while another is in flight (and
    │                                                    Gymnasium's AlreadyPendingCallError)
    ├── RemoteError(RockEnvsError, RuntimeError)         an exception raised in a worker; carries the
    │                                                    remote type, message and traceback
    ├── WorkerDiedError(RockEnvsError, RuntimeError)     a worker process/container/actor went away
    ├── WorkerTimeoutError(RockEnvsError, TimeoutError)  a call's timeout passed; names the env ids
    │                                                    (and multiprocessing.TimeoutError, as Gymnasium)
    ├── BackendUnavailableError(RockEnvsError, RuntimeError)  a backend that cannot run here (no engine...)
    ├── RemoteBackendError(RockEnvsError, ConnectionError)  the sandbox server of backend="remote" stayed
    │                                                    away, or refused to make or reopen a worker
    ├── CodeVersionError(RockEnvsError, RuntimeError)    a factory pickled by value under another Python
    ├── SnapshotError(RockEnvsError, ValueError)         an env snapshot that cannot be taken, or does not
    │                                                    fit (another env id, corrupted, not deterministic)
    ├── ImageBuildError(RockEnvsError, RuntimeError)     the container image cannot be built here; says why
    └── SandboxError (rock_envs.sandbox.errors)          every failure of the sandbox layer, its own tree

The sandbox agent's framing error (``WireError``) never leaves the sandbox layer: a peer that breaks
the framing is a dead agent, raised as ``SandboxDiedError``.

Messages name the call, say what was expected and what came, and end with the fix.
"""

from __future__ import annotations

import multiprocessing

from gymnasium import error as gym_error


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


class EnvArgumentError(RockEnvsError, TypeError, ValueError):
    """A bad argument: a wrong type (TypeError, as Python's own calls) or value (ValueError, as
    Gymnasium raises for a bad `reset_mask`); either `except` catches it."""


class SpaceMismatchError(EnvArgumentError, RuntimeError):
    """The envs of one vector env do not share one observation and action space (Gymnasium raises
    RuntimeError there)."""


class MissingDependencyError(RockEnvsError, ImportError):
    pass


class ActionError(RockEnvsError, ValueError, TypeError):
    """Wrong actions: a wrong count (ValueError) or a single action where a batch belongs (TypeError)."""


class EnvClosedError(RockEnvsError, RuntimeError, gym_error.ClosedEnvironmentError):
    pass


class CallOrderError(RockEnvsError, RuntimeError):
    """A call out of order. Its two kinds are also what Gymnasium raises there."""

    def __init__(self, message: str, name: str = ""):
        super().__init__(message)
        self.name = name  # the call, as Gymnasium's call-order errors carry it


class NoCallPendingError(CallOrderError, gym_error.NoAsyncCallError):
    """A wait (`step_wait`, `recv`) with nothing sent to wait for."""


class CallPendingError(CallOrderError, gym_error.AlreadyPendingCallError):
    """A call while an earlier one is still in flight (`step_async` twice, `reset` before `step_wait`)."""


class RemoteError(RockEnvsError, RuntimeError):
    """An exception raised inside a worker, carried back with its type, message and traceback.

    `remote_error(...)` makes it an instance of the original type too where the caller has that
    type loaded and it can be a base (so `except ValueError` around env code keeps working)."""

    def __init__(self, type_name: str, message: str, traceback: str, where: str = "worker", type_module: str = ""):
        self.type_name = type_name
        self.type_module = type_module
        self.remote_message = message
        self.remote_traceback = traceback
        self.where = where
        super().__init__(f"{type_name} in {where}: {message}\n--- remote traceback ---\n{traceback}")

    def __str__(self) -> str:  # not KeyError's repr() when the remote type is a KeyError
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple:
        args = (self.type_name, self.remote_message, self.remote_traceback, self.where, self.type_module)
        return remote_error, args


_REMOTE_CLASSES: dict[type, type[RemoteError]] = {}


def _remote_class(original: type) -> type[RemoteError]:
    """`RemoteError` that is also an `original` (made once per type), or `RemoteError` itself where
    `original` cannot be a second base (an instance layout of its own, such as OSError's)."""
    if original not in _REMOTE_CLASSES:
        cls: type[RemoteError] = RemoteError
        if isinstance(original, type) and issubclass(original, Exception) and not issubclass(original, RemoteError):
            try:
                cls = type(f"Remote{original.__name__}", (RemoteError, original), {"__module__": __name__})
            except TypeError:
                cls = RemoteError
        _REMOTE_CLASSES[original] = cls
    return _REMOTE_CLASSES[original]


def remote_error(
    type_name: str, message: str, traceback: str, where: str = "worker", type_module: str = ""
) -> RemoteError:
    """The `RemoteError` for an exception of type `type_module.type_name` raised remotely.

    Only a type whose module this process has loaded is used: code that catches a type has its
    module loaded, and nothing is imported because a worker named it."""
    import sys

    module = sys.modules.get(type_module) if type_module else None
    original = module
    for part in type_name.split("."):
        original = getattr(original, part, None)
    cls = _remote_class(original) if isinstance(original, type) else RemoteError
    return cls(type_name, message, traceback, where, type_module)


class WorkerDiedError(RockEnvsError, RuntimeError):
    pass


class WorkerTimeoutError(RockEnvsError, TimeoutError, multiprocessing.TimeoutError):
    def __init__(self, message: str, env_ids: list[int] | tuple[int, ...] = ()):
        self.env_ids = list(env_ids)
        super().__init__(message)


class BackendUnavailableError(RockEnvsError, RuntimeError):
    pass


class RemoteBackendError(RockEnvsError, ConnectionError):
    """The sandbox server could not be reached, or refused to make or reopen a worker."""


class CodeVersionError(RockEnvsError, RuntimeError):
    """Code pickled by value under one Python version was loaded under another."""


class SnapshotError(RockEnvsError, ValueError):
    """An env snapshot that cannot be taken (the env neither pickles nor replays), or cannot be
    restored here (another env id or kwargs, corrupted or truncated, a replay that diverged)."""


class ImageBuildError(RockEnvsError, RuntimeError):
    """The image cannot be built here; the message says why and what to do."""
