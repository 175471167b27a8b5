"""The one protocol every backend speaks: typed, batched requests to an EnvWorker and its replies.

One request covers all the envs a worker hosts (or a subset, for send/recv), so a vector step costs
one message per worker, never one per env. Messages are plain dataclasses, pickled; the env factory
inside `Make` travels with cloudpickle so lambdas and closures work.

On the wire (sockets, WebSockets, a sandbox's relay) a message is one frame: a 4-byte big-endian
length, then the pickled message. Requests and replies keep their order; callers may pipeline.
"""

from __future__ import annotations

import pickle
import traceback as tb
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from gymnasium.vector import AutoresetMode  # the one autoreset type, from the caller to the worker

from rock_envs.core.errors import RemoteError, remote_error
from rock_envs.core.frames import frame, read_frame  # noqa: F401 - the framing, importable from here too
from rock_envs.core.snapshot import SnapshotMode

OnError = Literal["reset", "raise"]
AutoresetName = Literal["next_step", "same_step", "disabled"]


def autoreset_mode_of(value: AutoresetMode | str) -> AutoresetMode:
    """Gymnasium's `AutoresetMode` from itself, its name ("next_step") or its value ("NextStep")."""
    if isinstance(value, AutoresetMode):
        return value
    for mode in AutoresetMode:
        if value in (mode.name.lower(), mode.value):
            return mode
    names = [mode.name.lower() for mode in AutoresetMode] + [mode.value for mode in AutoresetMode]
    raise ValueError(f"autoreset_mode must be one of {names} or a gymnasium AutoresetMode, got {value!r}")


class Message:
    """Base of every message: pickles as `(class, field values)`, which loads ~3x faster than the
    default dataclass path (copyreg plus a `__dict__` update) on the hot path of every step."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return type(self), tuple(self.__dict__.values())


# ---- requests ---------------------------------------------------------------------------------


@dataclass
class Make(Message):
    """Build the envs `env_ids` (global indices) with `factory(env_id) -> env`."""

    env_ids: list[int]
    factory: bytes  # cloudpickled Callable[[int], Env]
    autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP
    on_error: OnError = "reset"
    # The caller's import path: a factory pickled by reference (a class in a test folder or a
    # script's directory) loads in the worker as it would under multiprocessing's spawn.
    sys_path: list[str] = field(default_factory=list)
    # False (Gymnasium's observation_mode "different" or a given space): the envs' observation spaces
    # need only share a shape and dtype, and `Built.observation_spaces` lists each env's.
    same_observation_space: bool = True
    snapshot_mode: SnapshotMode = "auto"
    """How the envs are snapshotted (`rock_envs.core.snapshot`): pickle, replay, or auto."""
    record: bool = False
    """Each reset's info carries `episode_start` (its seed or RNG state), for trajectory records."""
    native: bool = False
    """`factory(num_envs)` makes one native vector env for all of `env_ids` (vectorize="native")."""
    worker_threads: int | None = None
    """Threads that step the worker's blocking envs at once (1: one after another; None: what the
    envs declare, `rock_envs.worker.overlap.declared_threads`, else 1). Envs with `async def
    step/reset` are stepped at once on the worker's asyncio loop whatever this says."""


@dataclass
class Reset(Message):
    env_ids: list[int]
    seeds: list[int | None]
    options: list[dict[str, Any] | None]


@dataclass
class Step(Message):
    env_ids: list[int]
    actions: Any  # one per env: a list, or an array of them
    flush_after: float | None = None
    """Seconds after which a partial `Batch` is sent (send/recv mode); None: one reply at the end."""


@dataclass
class Call(Message):
    """Call `name(*args, **kwargs)` on each env, or read the attribute `name` when `args is None`."""

    env_ids: list[int]
    name: str
    args: tuple[Any, ...] | None = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class SetAttr(Message):
    env_ids: list[int]
    name: str
    values: list[Any]


@dataclass
class Apply(Message):
    """Call `fn(env)` on each env the factory made (a function pickled by value); reply its values."""

    env_ids: list[int]
    fn: bytes


@dataclass
class Snapshot(Message):
    """Reply `Values` of one `EnvSnapshot` per env."""

    env_ids: list[int]


@dataclass
class Restore(Message):
    """Put env `env_ids[k]` in the state of `snapshots[k]`; reply `Values` of their observations (None
    where unknown). One snapshot given for many envs (a fork) is pickled once: the list repeats it."""

    env_ids: list[int]
    snapshots: list[Any]


@dataclass
class Close(Message):
    pass


Request = Union[Apply, Make, Reset, Step, Call, SetAttr, Snapshot, Restore, Close]


# ---- replies ----------------------------------------------------------------------------------


@dataclass
class Built(Message):
    observation_space: Any
    action_space: Any
    metadata: dict[str, Any]
    render_mode: str | None
    observation_spaces: list[Any] | None = None  # one per env, only when Make's same_observation_space is False


@dataclass
class Batch(Message):
    """Results for `env_ids`; `obs` is a stacked array for array spaces, else a list.

    `final` is False on a partial reply of a `Step` with `flush_after`: more follow for that step.
    """

    env_ids: list[int]
    obs: Any
    rewards: list[float]  # lists, not arrays: a list of 32 floats pickles ~10x faster than an array
    terminated: list[bool]
    truncated: list[bool]
    infos: list[dict[str, Any]]
    final: bool = True


@dataclass
class Values(Message):
    values: list[Any]


@dataclass
class Failure(Message):
    """An exception in the worker, with what the caller needs to re-raise it readably."""

    type_name: str  # the type's qualified name
    message: str
    traceback: str
    type_module: str = ""  # the module of the type, so the caller can raise an instance of it too

    @classmethod
    def from_exception(cls, e: BaseException) -> Failure:
        kind = type(e)
        text = "".join(tb.format_exception(kind, e, e.__traceback__))
        return cls(kind.__qualname__, str(e), text, kind.__module__)

    def to_error(self, where: str = "worker") -> RemoteError:
        """The caller's `RemoteError` for this failure (also an instance of the remote type where it can be)."""
        return remote_error(self.type_name, self.message, self.traceback, where, self.type_module)


Reply = Union[Built, Batch, Values, Failure]


def error_info(e: BaseException) -> dict[str, str]:
    """What an env's info carries when the env raised: type, message and traceback text."""
    return {
        "type": type(e).__name__,
        "message": str(e),
        "traceback": "".join(tb.format_exception(type(e), e, e.__traceback__)),
    }


def encode(message: Request | Reply) -> bytes:
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def decode(payload: bytes) -> Request | Reply:
    return pickle.loads(payload)
