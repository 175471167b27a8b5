"""The vector engine: N envs on M workers of any backend, as one `gymnasium.vector.VectorEnv`.

`RockVectorEnv` is the Gymnasium face (reset, step, send/recv, call, and assembling the results);
the requests in flight, the replies, restarts and timeouts are the `Dispatcher`'s (dispatcher.py).

Two ways to step:
- `step(actions)` / `step_async` + `step_wait`: every env, results in env order;
- `send(actions, env_ids)` + `recv()`: EnvPool's asynchronous mode; `recv` returns the first
  `batch_size` envs that finished, with their ids, so a slow env never holds back the others.

A worker that dies mid-call is restarted, its envs rebuilt and re-seeded with their last seed; the
call returns with those envs truncated and flagged in info (`worker_restarted`), never hangs.

Env state (snapshot, restore, fork) is `SnapshotOps`' (snapshots.py); `record=DIR` writes every
episode as JSON Lines (recording.py).
"""

from __future__ import annotations

import enum
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np
from gymnasium.spaces.utils import is_space_dtype_shape_equiv
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_differing_spaces, batch_space

from rock_envs.backends.base import WorkerGroup
from rock_envs.core import pickling
from rock_envs.core.errors import (
    CallPendingError,
    EnvArgumentError,
    EnvClosedError,
    NoCallPendingError,
    SpaceMismatchError,
)
from rock_envs.core.snapshot import SnapshotMode
from rock_envs.core.spaces import ObservationMode, check_observation_mode, check_same_spaces
from rock_envs.vector import arguments
from rock_envs.vector.actions import split_actions
from rock_envs.vector.assembly import Assembler
from rock_envs.vector.dispatcher import Dispatcher, Purpose
from rock_envs.vector.progress import build_progress
from rock_envs.vector.recording import Recorder
from rock_envs.vector.snapshots import SnapshotOps
from rock_envs.vector.stats import VectorCollector, VectorStats
from rock_envs.worker.protocol import Apply, Built, Call, Make, OnError, SetAttr, Step


class State(enum.Enum):
    DEFAULT = "default"
    WAITING_STEP = "step_async"


class RockVectorEnv(SnapshotOps, VectorEnv):
    """`num_envs` envs on the workers of `group`, behind Gymnasium's `VectorEnv` face.

    After construction every env is built (its worker answered `Make`) and none is reset. Calls
    follow Gymnasium's order: `reset` before the first step; `step_async` is followed by exactly
    one `step_wait`; `send` may be repeated for envs not in flight, and `recv` returns up to
    `batch_size` of them. While a `step_async` or a `send` is unanswered, `reset`, `step_async`,
    `async_reset`, `call`, `get_attr` and `set_attr` raise `CallOrderError` (nothing is lost:
    collect first, then call again). Every wait takes `timeout` (the vector env's by default); past
    it `WorkerTimeoutError` names the envs, and their workers are restarted. After `close()` every
    call raises `EnvClosedError`; `close()` itself may be called twice.
    """

    def __init__(
        self,
        group: WorkerGroup,
        factory: Any,
        num_envs: int,
        *,
        autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP,
        on_error: OnError = "reset",
        batch_size: int | None = None,
        timeout: float | None = None,
        flush_after: float = 0.002,
        spec: Any = None,
        check_actions: bool = False,
        observation_mode: ObservationMode = "same",
        snapshot_mode: SnapshotMode = "auto",
        record: str | None = None,
        restore: str = "reset",
        worker_threads: int | None = None,
        env_specs: list[Any] | None = None,
        native: bool = False,
        blocks: list[list[int]] | None = None,
    ):
        self.num_envs = num_envs
        self.group = group
        self.timeout = timeout
        self.check_actions = check_actions
        self.flush_after = flush_after
        self.batch_size = num_envs if batch_size is None else batch_size
        if not 1 <= self.batch_size <= num_envs:
            raise EnvArgumentError(f"`make_vec`: batch_size must be in 1..{num_envs}, got {batch_size}.")
        self._mode = autoreset_mode
        self.spec = spec
        check_observation_mode(observation_mode)
        self.observation_mode = observation_mode
        make = Make(
            [],
            pickling.dumps(factory),
            autoreset_mode,
            on_error,
            list(sys.path),
            same_observation_space=observation_mode == "same",
            snapshot_mode=snapshot_mode,
            record=record is not None,
            worker_threads=worker_threads,
            native=native,
        )
        self.vectorize = "native" if native else "per_env"
        """How the envs are hosted: "native" (one native vector env per worker) or "per_env"."""
        self._d = Dispatcher(group, num_envs, make, restore, blocks)
        self.metrics: VectorCollector | None = None  # make_vec(..., metrics=True) sets it
        self._factory = factory
        self.env_specs = env_specs
        """A mixed batch: env i's spec (`infos["env_id"]` names each row's id); else None."""
        ids = [s.id for s in env_specs] if env_specs is not None else None
        self._row_ids = np.array(ids, dtype=object) if ids is not None and len(set(ids)) > 1 else None
        self._recorder: Recorder | None = None
        self.blocks, self.worker_of = self._d.blocks, self._d.worker_of
        self._state = State.DEFAULT
        self.closed = False
        group.start()
        try:
            built = self._build_all()
        except BaseException:
            group.close()
            raise
        self.single_action_space = built.action_space
        self.observation_space, self.single_observation_space = self._observation_spaces(built)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {**built.metadata, "autoreset_mode": self._mode}
        self.render_mode = built.render_mode
        self._assembler = Assembler(num_envs, built.observation_space)
        self._d.row = self._assembler.obs.row
        if record is not None:
            identities = [self._identity(i) for i in range(num_envs)]
            assert all(env_id is not None for env_id, _ in identities)  # make_vec refuses to record a callable
            self._recorder = Recorder(
                record,
                [str(env_id) for env_id, _ in identities],
                [kwargs or {} for _, kwargs in identities],
                num_envs,
                self._mode,
                self._assembler.obs.row,
                group.name,
            )
            self._d.on_rebuilt = self._recorder.interrupted

    @property
    def autoreset_mode(self) -> AutoresetMode:
        return self._mode

    # ---- the Gymnasium API -------------------------------------------------------------------

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
    ):
        """Reset every env (or those of `options["reset_mask"]`); an int `seed` seeds env i with seed + i.

        `options` is one dict for every env, as in Gymnasium, or a list of one per env (None: none)."""
        self._require_idle("reset")
        ids = self._reset_ids(options)
        self._send_resets(ids, seed, options, Purpose.GATHER)
        if self._recorder is not None:
            self._recorder.sent_reset(ids)
        obs, rewards, terms, truncs, infos = self._collect(ids, self.timeout, "reset")
        if self._recorder is not None:
            self._recorder.results(ids, ids, obs, rewards, terms, truncs, infos)
        return obs, self._with_env_ids(infos, None)

    def step(self, actions: Any):
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: Any) -> None:
        self._require_idle("step_async")
        actions = split_actions(
            "step", actions, self.num_envs, self.single_action_space, self.action_space, self.check_actions
        )
        if isinstance(actions, np.ndarray) and actions.ndim == 1 and self.vectorize != "native":
            actions = (
                actions.tolist()
            )  # Python scalars pickle fast, and envs check them fast (a native block takes the array)
        for w, (lo, hi) in enumerate(self._d.bounds):
            block = self.blocks[w]
            self._d.submit(w, Step(block, actions[lo:hi], None), Purpose.GATHER, block)
        if self._recorder is not None:
            self._recorder.sent_step(range(self.num_envs), actions)
        self._state = State.WAITING_STEP

    def step_wait(self, timeout: float | None = None):
        """Wait for the step sent by `step_async`; `timeout` (seconds) overrides the vector env's."""
        self._check_open("step_wait")
        if self._state is not State.WAITING_STEP:
            raise NoCallPendingError("`step_wait`: no step is pending; call `step_async(actions)` first.", "step_wait")
        try:
            ids = list(range(self.num_envs))
            result = self._collect(ids, self.timeout if timeout is None else timeout, "step_wait")
        finally:
            self._state = State.DEFAULT
        if self._recorder is not None:
            self._recorder.results(ids, ids, *result)
        return (*result[:4], self._with_env_ids(result[4], None))

    # ---- EnvPool's asynchronous mode --------------------------------------------------------

    def send(self, actions: Any, env_ids: Sequence[int] | np.ndarray | None = None) -> None:
        """Step `env_ids` (default: all) with `actions`; returns at once. Collect with `recv`.

        A worker sends what it has every `flush_after` seconds, so a slow env never holds back the
        envs of other workers. A worker that steps its envs at once (`worker_threads`, or envs with
        `async def step`) sends each env as it finishes; one that steps them one after another
        makes the envs after a slow one in this call wait for it.
        """
        self._check_open("send")
        if self._state is not State.DEFAULT:
            raise CallPendingError("`send`: a `step_async` is still waiting; call `step_wait()` first.", "step")
        ids = self._check_ids("send", env_ids)
        busy = sorted(self._d.inflight.intersection(ids))
        if busy:
            raise CallPendingError(f"`send`: envs {busy[:8]} still have a step in flight; `recv()` them first.", "send")
        actions = split_actions(
            "send", actions, len(ids), self.single_action_space, self.action_space, self.check_actions
        )
        position = {i: k for k, i in enumerate(ids)}
        for w, part in self._d.by_worker(ids):
            chunk: Any
            if isinstance(actions, np.ndarray):
                chunk = actions[[position[i] for i in part]]
            else:
                chunk = [actions[position[i]] for i in part]
            self._d.submit(w, Step(part, chunk, self.flush_after), Purpose.EACH, part)
        if self._recorder is not None:
            self._recorder.sent_step(ids, actions)

    def async_reset(
        self, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> None:
        """Reset every env without waiting; the results come out of `recv`."""
        self._require_idle("async_reset")
        self._send_resets(list(range(self.num_envs)), seed, options, Purpose.EACH)
        if self._recorder is not None:
            self._recorder.sent_reset(range(self.num_envs))

    def recv(self, timeout: float | None = None):
        """The first `batch_size` envs that finished: `(env_ids, obs, rewards, terminations, truncations, infos)`."""
        self._check_open("recv")
        d = self._d
        want = min(self.batch_size, len(d.inflight) + len(d.ready))
        if want == 0:
            raise NoCallPendingError("`recv`: nothing is in flight; call `send(actions, env_ids)` first.", "recv")
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        d.restarts.clear()
        while len(d.ready) < want:
            d.pump(deadline, "recv")
            d.raise_failure()
        ids = list(d.ready)[:want]
        results = [d.ready.pop(i) for i in ids]
        rows = self._assembler.rows(ids, results)
        if self._recorder is not None:
            self._recorder.results(ids, range(len(ids)), *rows)
        return (np.asarray(ids, dtype=np.int64), *rows[:4], self._with_env_ids(rows[4], ids))

    # ---- call / get_attr / set_attr --------------------------------------------------------

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        return self.call_envs(None, name, *args, **kwargs)

    def render(self) -> tuple[Any, ...] | None:
        """Every env's frame, as Gymnasium's vector envs return them (`render_mode` says what a frame is)."""
        return self.call("render")

    @property
    def np_random_seed(self) -> tuple[Any, ...]:  # type: ignore[override]  # per env, as Gymnasium's own
        """The seed of every env's generator (Gymnasium: `(42, 43, ...)` after `reset(seed=42)`)."""
        return self.get_attr("np_random_seed")

    @property  # type: ignore[misc]
    def np_random(self) -> tuple[Any, ...]:  # type: ignore[override]  # per env, as Gymnasium's own
        """Every env's generator, a copy (it lives in the env's worker)."""
        return self.get_attr("np_random")

    def get_attr(self, name: str, env_ids: Sequence[int] | None = None) -> tuple[Any, ...]:
        """Attribute `name` of every env (or of `env_ids`, in that order), looked up through wrappers."""
        return self._on_envs("get_attr", env_ids, lambda ids: Call(ids, name, None))

    def set_attr(self, name: str, values: Any, env_ids: Sequence[int] | None = None) -> None:
        """Set `name` on every env (or on `env_ids`): one value for all, or a list of one per env."""
        ids = self._check_ids("set_attr", env_ids)
        if not isinstance(values, (list, tuple)):
            values = [values] * len(ids)
        if len(values) != len(ids):
            raise EnvArgumentError(f"`set_attr({name!r})`: expected {len(ids)} values, got {len(values)}.")
        value_of = dict(zip(ids, values))
        self._on_envs("set_attr", ids, lambda part: SetAttr(part, name, [value_of[i] for i in part]))

    def call_envs(self, env_ids: Sequence[int] | None, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """`call(name, ...)` on `env_ids` only (None: every env); the values in the order of `env_ids`."""
        return self._on_envs("call", env_ids, lambda ids: Call(ids, name, args, kwargs))

    @property
    def envs(self) -> list[Any]:
        """The env objects, as `SyncVectorEnv.envs` and SB3's `DummyVecEnv.envs` give them: on the
        local backend only, where they live in this process."""
        envs = self.group.local_envs()
        if envs is None:
            raise AttributeError(
                f"`envs`: the envs of the {self.group.name} backend live in its workers, not in this process; "
                "reach them with `get_attr`, `call` or `apply(fn)`, or use backend='local'."
            )
        return envs

    def apply(self, fn: Callable[[Any], Any], env_ids: Sequence[int] | None = None) -> tuple[Any, ...]:
        """`fn(env)` for every env (or `env_ids`), run where the env lives, on the env its factory made.

        `fn` is pickled by value (a lambda is fine) and its value comes back pickled."""
        payload = pickling.dumps(fn)
        return self._on_envs("apply", env_ids, lambda ids: Apply(ids, payload))

    def _on_envs(self, what: str, env_ids: Sequence[int] | None, request_for: Callable[[list[int]], Any]) -> tuple:
        self._require_idle(what)
        ids = self._check_ids(what, env_ids)
        parts = self._d.by_worker(ids)
        pendings = [self._d.submit(w, request_for(part)) for w, part in parts]
        self._d.wait_done(pendings, self.timeout, what)
        value_of = {i: v for (_, part), p in zip(parts, pendings) for i, v in zip(part, p.reply.values)}
        return tuple(value_of[i] for i in ids)

    # ---- sending and waiting (the dispatcher's) -----------------------------------------------

    def _require_idle(self, call: str) -> None:
        """The guard of every call that needs no call in flight (Gymnasium's `_assert_is_running` twin)."""
        self._check_open(call)
        self._d.drain_interrupted(self.timeout)
        if self._state is State.WAITING_STEP:
            raise CallPendingError(f"`{call}`: a `step_async` is still waiting; call `step_wait()` first.", "step")
        if self._d.inflight:
            raise CallPendingError(
                f"`{call}`: envs {sorted(self._d.inflight)[:8]} still have a `send` in flight; `recv()` them first.",
                "send",
            )

    def _send_resets(self, ids: list[int], seed: Any, options: Any, purpose: Purpose) -> None:
        if isinstance(options, (list, tuple)):
            if len(options) != self.num_envs:
                raise EnvArgumentError(
                    f"`reset`: expected one options dict per env ({self.num_envs}), got {len(options)}."
                )
            per_env = [options[i] or None for i in ids]
        else:
            shared = {k: v for k, v in (options or {}).items() if k != "reset_mask"} or None
            per_env = [shared] * len(ids)
        self._d.send_resets(ids, self._seeds_for(ids, seed), per_env, purpose)

    def _collect(self, ids: list[int], timeout: float | None, what: str):
        """Wait for every in-flight env (the whole current call), then assemble rows `ids`."""
        batches = self._d.collect(timeout, what)
        ready, self._d.ready = self._d.ready, {}
        return self._assembler.assemble(ids, batches, ready)

    def _build_all(self) -> Built:
        pendings = [self._d.make(w) for w in range(self.group.num_workers)]
        with build_progress(getattr(self.spec, "id", "") or "", self.num_envs, pendings) as tick:
            self._d.wait_done(pendings, self.timeout, "make_vec", on_pump=tick)
        first = pendings[0].reply
        same = self.observation_mode == "same"
        for w, p in enumerate(pendings[1:], 1):
            names = [f"the envs of worker {v}" for v in (0, w)]
            if self._row_ids is not None:  # a mixed batch: name the first env of each worker and its id
                names = [f"{self._describe(self.blocks[v][0])} (on worker {v})" for v in (0, w)]
            check_same_spaces(first, p.reply, names[0], names[1], same)
        if not same:
            first.observation_spaces = [space for p in pendings for space in p.reply.observation_spaces]
        return first

    def _observation_spaces(self, built: Built) -> tuple[Any, Any]:
        """(batched, single) observation spaces, as Gymnasium's `observation_mode` defines them."""
        if self.observation_mode == "same":
            return batch_space(built.observation_space, self.num_envs), built.observation_space
        per_env = list(built.observation_spaces or ())  # the workers list them unless the mode is "same"
        if self.observation_mode == "different":
            return batch_differing_spaces(per_env), built.observation_space
        batched, single = self.observation_mode
        for i, space in enumerate(per_env):
            if not is_space_dtype_shape_equiv(space, single):
                raise SpaceMismatchError(
                    f"`make_vec(..., observation_mode=(batched, single))`: env {i}'s observation space {space} "
                    f"does not share the shape and dtype of the given single space {single}."
                )
        return batched, single

    # ---- small helpers -----------------------------------------------------------------------

    def _identity(self, i: int) -> tuple[str | None, dict[str, Any] | None]:
        """Env i's id and kwargs (None, None: made by a callable)."""
        identity = getattr(self._factory, "identity", None)
        return identity(i) if identity is not None else (None, None)

    def _describe(self, i: int) -> str:
        describe = getattr(self._factory, "describe", None)
        return describe(i) if describe is not None else f"env {i}"

    def _with_env_ids(self, infos: dict[str, Any], ids: list[int] | None) -> dict[str, Any]:
        """A mixed batch's infos name each row's env id (`infos["env_id"]`, with its `_env_id` mask)."""
        if self._row_ids is None:
            return infos
        column = self._row_ids if ids is None else self._row_ids[ids]
        return {**infos, "env_id": column.copy(), "_env_id": np.ones(len(column), dtype=np.bool_)}

    def _reset_ids(self, options: Any) -> list[int]:
        return arguments.reset_ids(options, self.num_envs)

    def _seeds_for(self, ids: list[int], seed: Any) -> list[int | None]:
        return arguments.seeds_for(ids, seed, self.num_envs)

    def _check_ids(self, call: str, env_ids: Any) -> list[int]:
        return arguments.check_ids(call, env_ids, self.num_envs)

    def _check_open(self, call: str) -> None:
        if self.closed:
            raise EnvClosedError(
                f"`{call}` after `close()`: this vector env is closed; make a new one with `rock_envs.make_vec`."
            )

    def stats(self, window: float = 10.0) -> VectorStats:
        """Steps, resets, steps/s over the last `window` seconds, restarts, env errors, timeouts, and
        each worker's envs, steps and step latency (p50/p99); see `rock_envs.vector.stats`."""
        return self._d.stats.snapshot(window)

    def close_extras(self, **kwargs: Any) -> None:
        if self.metrics is not None:
            self.metrics.unregister()
        try:
            if self._recorder is not None:
                self._recorder.close()
        finally:
            self.group.close()

    def __del__(self) -> None:
        if not getattr(self, "closed", True):
            try:
                self.close()
            except Exception:
                pass

    def __enter__(self) -> RockVectorEnv:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        spec_id = getattr(self.spec, "id", None) or (
            "+".join(dict.fromkeys(s.id for s in self.env_specs)) if self.env_specs else "?"
        )
        return f"RockVectorEnv({spec_id!r}, num_envs={self.num_envs}, backend={self.group.name!r}, workers={self.group.num_workers})"
