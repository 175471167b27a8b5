"""Env snapshots: `take(env)` captures an env's whole state, `restore(env, snapshot)` puts it back.

Two mechanisms, picked per env by its `snapshot_mode`:

- `"pickle"`: the env object itself is pickled (fast; needs an env whose state pickles);
- `"replay"`: the env's episode is kept as its start (seed, or generator state) and its actions;
  restoring resets the env that way and steps the actions again (any deterministic env). The
  observation reached is checked against the one recorded, so a non-deterministic env is refused;
- `"auto"` (default): pickle where the env pickles. Whether it does is tried once per env type,
  after its first reset; an env type that does not pickle keeps its episode log for replay.

A snapshot also carries the env's id and kwargs (it is restored only into an env of the same id
and kwargs) and its own random state (`rock_envs.core.rng`), so a restored env continues exactly
as the original would. The episode log for replay is kept by wrapping the env's `reset` and
`step` with instance attributes (removed again when the env is known to pickle).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import pickle
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import cloudpickle

from rock_envs.core import rng
from rock_envs.core.adapters import GemEnv, GymnasiumEnv, user_env
from rock_envs.core.errors import EnvArgumentError, EnvClosedError, SnapshotError
from rock_envs.core.resets import call_reset
from rock_envs.core.trajectory import obs_hash

SnapshotMode = Literal["auto", "pickle", "replay"]
SNAPSHOT_MODES = ("auto", "pickle", "replay")
FORMAT = 1
_MAGIC = b"rock-envs-snapshot\n"


@dataclass(frozen=True, eq=False)
class EnvSnapshot:
    """The whole state of one env at one moment: opaque, picklable, restorable into any env made
    with the same id and kwargs (`env.restore(s)`, `venv.restore([s], [i])`, `venv.fork`).

    `env_id`, `kwargs`, `index` (the vector env index it was taken from; None for a single env)
    and `mode` (`"pickle"` or `"replay"`) say what it is; the rest is for rock-envs only.
    `to_bytes()` / `EnvSnapshot.from_bytes(data)` store it in files."""

    env_id: str
    kwargs: dict[str, Any]
    index: int | None
    mode: Literal["pickle", "replay"]
    rng: dict[str, Any] | None = field(repr=False)
    data: bytes = field(repr=False)
    digest: str = field(repr=False)
    worker: dict[str, Any] = field(default_factory=dict, repr=False)
    """What the env's worker knew of it: whether its episode is over, and its last observation."""
    created_at: float = field(default_factory=time.time, repr=False)
    format: int = FORMAT

    def to_bytes(self) -> bytes:
        return _MAGIC + pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes) -> EnvSnapshot:
        """The snapshot `to_bytes()` wrote; `SnapshotError` for anything else (a truncated file)."""
        if not data.startswith(_MAGIC):
            raise SnapshotError(
                "`EnvSnapshot.from_bytes`: these bytes are not an env snapshot (no rock-envs header); "
                "pass what `snapshot.to_bytes()` returned."
            )
        try:
            snapshot = pickle.loads(data[len(_MAGIC) :])
        except Exception as exc:
            raise SnapshotError(
                f"`EnvSnapshot.from_bytes`: the snapshot is corrupted or truncated ({type(exc).__name__}: {exc}); "
                "take a new one."
            ) from None
        if not isinstance(snapshot, cls):
            raise SnapshotError(f"`EnvSnapshot.from_bytes`: expected an EnvSnapshot, got a {type(snapshot).__name__}.")
        return snapshot


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


# ---- what each env keeps for snapshots ---------------------------------------------------------


class ReplayLog:
    """The current episode of an env in replay mode: how it started, its actions, its last obs."""

    __slots__ = ("start", "actions", "obs")

    def __init__(self) -> None:
        self.start: dict[str, Any] | None = None
        self.actions: list[Any] = []
        self.obs: str | None = None


class Keeper:
    """Per env: its requested mode, its kwargs, what auto mode found, and its replay log."""

    __slots__ = ("mode", "kwargs", "resolved", "log", "why_not")

    def __init__(self, mode: SnapshotMode = "auto", kwargs: dict[str, Any] | None = None):
        self.mode: SnapshotMode = mode
        self.kwargs = dict(kwargs or {})
        self.resolved: str | None = None  # "pickle" or "replay" once known
        self.log: ReplayLog | None = None
        self.why_not: str | None = None  # why the env did not pickle


_KEEPER = "_rock_snapshot"
_PICKLES: dict[tuple[type, type], str | None] = {}  # per env type: None if it pickles, else why not


def check_mode(mode: Any, call: str) -> SnapshotMode:
    if mode not in SNAPSHOT_MODES:
        raise EnvArgumentError(f"`{call}`: snapshot_mode must be one of {list(SNAPSHOT_MODES)}, got {mode!r}.")
    return mode


def keeper(env: Any) -> Keeper:
    k = env.__dict__.get(_KEEPER)
    if k is None:
        k = Keeper()
        env.__dict__[_KEEPER] = k
    return k


def prepare(env: Any, mode: SnapshotMode | None = None, kwargs: dict[str, Any] | None = None) -> None:
    """Set `env`'s snapshot mode and/or the kwargs it was made with (what is None stays)."""
    k = keeper(env)
    if kwargs is not None:
        k.kwargs = dict(kwargs)
    if mode is not None:
        k.mode, k.resolved = mode, ("replay" if mode == "replay" else "pickle" if mode == "pickle" else None)
        if mode == "pickle":
            _uninstall(env, k)
        elif k.log is None:
            _install(env, k)


def _originals(env: Any) -> tuple[Any, Any]:
    """The env's own `reset` and `step`, under any log wrapper."""
    if isinstance(env, GymnasiumEnv):
        return env.env.reset, env.env.step
    cls = type(env)
    return cls.reset.__get__(env, cls), cls.step.__get__(env, cls)


def _install(env: Any, k: Keeper) -> None:
    reset0, step0 = _originals(env)
    log = k.log = ReplayLog()

    def reset(seed: int | None = None, *, options: dict[str, Any] | None = None) -> Any:
        before = rng.before_reset(env, seed)

        def logged(out: Any) -> Any:
            log.start, log.actions, log.obs = rng.episode_start(env, seed, options, before), [], obs_hash(out[0])
            if k.resolved is None:
                _probe(env, k)
            return out

        return _then(call_reset(reset0, seed, options), logged)

    def step(action: Any) -> Any:
        log.actions.append(action)

        def logged(out: Any) -> Any:
            log.obs = obs_hash(out[0])
            return out

        return _then(step0(action), logged)

    env.reset, env.step = reset, step


def _then(out: Any, fn: Callable[[Any], Any]) -> Any:
    """`fn(out)`; for an env with `async def step/reset`, a coroutine that awaits `out` first."""
    if not inspect.isawaitable(out):
        return fn(out)

    async def awaited() -> Any:
        return fn(await out)

    return awaited()


def _uninstall(env: Any, k: Keeper) -> None:
    if k.log is None:
        return
    k.log = None
    if isinstance(env, GymnasiumEnv):
        env.reset, env.step = env.env.reset, env.env.step  # type: ignore[method-assign]
    else:
        env.__dict__.pop("reset", None)
        env.__dict__.pop("step", None)


def _type_key(env: Any) -> tuple[type, type]:
    try:
        inner = env.unwrapped
    except AttributeError:  # a GEM-like env of its own, with no `unwrapped`
        inner = user_env(env)
    return type(user_env(env)), type(inner)


def _probe(env: Any, k: Keeper) -> None:
    """Auto mode, after the env's first reset: pickle it (once per env type) to pick the mechanism."""
    key = _type_key(env)
    if key not in _PICKLES:
        try:
            _dump(env)
            _PICKLES[key] = None
        except Exception as exc:  # noqa: BLE001 - any failure to pickle means replay
            _PICKLES[key] = f"{type(exc).__name__}: {exc}"
    k.why_not = _PICKLES[key]
    if k.why_not is None:
        k.resolved = "pickle"
        _uninstall(env, k)
    else:
        k.resolved = "replay"


# ---- pickling the env's state ------------------------------------------------------------------

_NOT_STATE = (_KEEPER, "reset", "step")


def _state_of(env: Any) -> Any:
    if isinstance(env, (GemEnv, GymnasiumEnv)):
        return user_env(env)
    return {k: v for k, v in vars(env).items() if k not in _NOT_STATE}


def _dump(env: Any) -> bytes:
    state = _state_of(env)
    try:
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a class or function by value (a notebook's, a test's): cloudpickle
        buffer = io.BytesIO()
        cloudpickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
        return buffer.getvalue()


def _swap_in(env: Any, state: Any) -> None:
    if isinstance(env, GemEnv):
        env._env = state
    elif isinstance(env, GymnasiumEnv):
        env.env = state
        env.reset, env.step = state.reset, state.step  # type: ignore[method-assign]
    else:
        for name in [n for n in vars(env) if n not in _NOT_STATE]:
            del env.__dict__[name]
        env.__dict__.update(state)


# ---- taking and restoring ----------------------------------------------------------------------


def identity(env: Any) -> tuple[str, dict[str, Any]]:
    """The env id a snapshot of `env` carries (its spec's id, else its class) and its kwargs."""
    spec = getattr(env, "spec", None)
    env_id = getattr(spec, "id", None)
    if not isinstance(env_id, str):
        raw = user_env(env)
        env_id = f"{type(raw).__module__}.{type(raw).__qualname__}"
    return env_id, dict(keeper(env).kwargs)


def describe(env: Any, index: int | None) -> str:
    env_id, _ = identity(env)
    return f"env {env_id!r}" + (f" (env {index})" if index is not None else "")


def _check_open(env: Any, call: str, index: int | None) -> None:
    if getattr(env, "closed", False):
        raise EnvClosedError(
            f"`{call}` on {describe(env, index)} after `close()`; make a new env and restore the snapshot into it."
        )


def take(env: Any, index: int | None = None, worker: dict[str, Any] | None = None) -> EnvSnapshot:
    """The snapshot of `env` now (see the module docstring for how); `SnapshotError` if it cannot be taken."""
    _check_open(env, "snapshot", index)
    k = keeper(env)
    env_id, kwargs = identity(env)
    state = rng.get_state(env)
    pickle_failed = None
    if k.mode != "replay" and k.resolved != "replay":
        try:
            data = _dump(env)
        except Exception as exc:  # noqa: BLE001 - reported below, with what to do
            pickle_failed = f"{type(exc).__name__}: {exc}"
        else:
            return EnvSnapshot(env_id, kwargs, index, "pickle", state, data, _digest(data), dict(worker or {}))
        if k.mode == "pickle" or k.log is None:
            raise SnapshotError(
                f"`snapshot`: {describe(env, index)} does not pickle ({pickle_failed[:300]}), and no episode "
                "log was kept to replay it; make it with `snapshot_mode='replay'` (a deterministic env), "
                "or make its state picklable."
            )
    why = k.why_not or pickle_failed
    log = k.log
    if log is None or log.start is None:
        raise SnapshotError(
            f"`snapshot`: {describe(env, index)} is snapshotted by replay"
            + (f" (it does not pickle: {why[:200]})" if why else "")
            + ", which needs an episode to replay; call `reset(seed=...)` first."
        )
    if not rng.reproducible(log.start):
        raise SnapshotError(
            f"`snapshot`: {describe(env, index)} supports neither mechanism: "
            + (f"it does not pickle ({why[:200]}), and " if why else "")
            + "its episode was reset without a seed, so replaying it would not give the same state; "
            "reset it with `reset(seed=...)` first."
        )
    data = pickle.dumps((log.start, list(log.actions), log.obs), protocol=pickle.HIGHEST_PROTOCOL)
    return EnvSnapshot(env_id, kwargs, index, "replay", state, data, _digest(data), dict(worker or {}))


def replay_snapshot(
    env_id: str, kwargs: dict[str, Any], start: dict[str, Any], actions: list[Any], obs: str | None
) -> EnvSnapshot:
    """A replay snapshot of an episode known from elsewhere (a trajectory record): restoring it resets
    as `start` says, steps `actions`, and checks that the observation reached hashes to `obs`."""
    data = pickle.dumps((start, list(actions), obs), protocol=pickle.HIGHEST_PROTOCOL)
    return EnvSnapshot(env_id, dict(kwargs), None, "replay", None, data, _digest(data))


def check_fits(snapshot: Any, env_id: str | None, kwargs: dict[str, Any] | None, target: str, call: str) -> None:
    """Raise `SnapshotError` unless `snapshot` is an intact snapshot of an env like `target`."""
    if not isinstance(snapshot, EnvSnapshot):
        raise SnapshotError(f"`{call}`: expected an EnvSnapshot (from `snapshot()`), got a {type(snapshot).__name__}.")
    if snapshot.format != FORMAT or _digest(snapshot.data) != snapshot.digest:
        raise SnapshotError(
            f"`{call}`: the snapshot of env {snapshot.env_id!r} is corrupted or truncated (its data does not "
            "match its digest); take a new one."
        )
    if env_id is not None and snapshot.env_id != env_id:
        raise SnapshotError(
            f"`{call}`: a snapshot of env {snapshot.env_id!r} cannot be restored into {target}; restore "
            f"it into an env made from {snapshot.env_id!r}."
        )
    if kwargs is not None:
        try:
            same = snapshot.kwargs == kwargs
        except Exception:  # noqa: BLE001 - kwargs that cannot be compared are taken as different
            same = False
        if not same:
            raise SnapshotError(
                f"`{call}`: the snapshot of env {snapshot.env_id!r} was made with kwargs {snapshot.kwargs!r}, "
                f"but {target} has {kwargs!r}; restore it into an env made with the same kwargs."
            )


def restore(env: Any, snapshot: EnvSnapshot, index: int | None = None) -> Any:
    """Put `env` in the state of `snapshot`; returns the observation it is at, where known."""
    _check_open(env, "restore", index)
    env_id, kwargs = identity(env)
    check_fits(snapshot, env_id, kwargs, describe(env, index), "restore")
    k = keeper(env)
    try:
        payload = pickle.loads(snapshot.data)
    except Exception as exc:
        raise SnapshotError(
            f"`restore`: the snapshot of env {snapshot.env_id!r} cannot be loaded here "
            f"({type(exc).__name__}: {exc}); restore it where the env's code is the same."
        ) from None
    obs = snapshot.worker.get("last_obs")
    if snapshot.mode == "pickle":
        _uninstall(env, k)
        _swap_in(env, payload)
        k.resolved = "pickle"
        if k.mode == "replay":
            _install(env, k)  # its log starts again at the next reset
            k.resolved = "replay"
    else:
        start, actions, expected = payload
        if k.log is None:
            _install(env, k)
        k.resolved = "replay"
        obs = _replay(env, start, actions, expected, index)
    if snapshot.rng is not None:
        rng.set_state(env, snapshot.rng)
    return obs


def _replay(env: Any, start: dict[str, Any], actions: list[Any], expected: str | None, index: int | None) -> Any:
    obs, _ = rng.start_episode(env, start)
    for action in actions:
        try:
            obs = env.step(action)[0]
        except Exception:  # noqa: BLE001 - the original step raised too (its worker ended that episode)
            pass
    if expected is not None and obs_hash(obs) != expected:
        raise SnapshotError(
            f"`restore`: replaying {describe(env, index)} ({len(actions)} actions from its reset) gave another "
            "observation than the original; the env is not deterministic, so it can only be snapshotted "
            "with `snapshot_mode='pickle'`."
        )
    return obs
