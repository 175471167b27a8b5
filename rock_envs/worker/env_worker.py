"""EnvWorker: hosts many envs in one process and executes batched requests. Knows no transport.

Autoreset happens here, so a vector step is one round trip whatever the mode:

- next_step: a step after `terminated or truncated` resets that env instead (reward 0, not done);
- same_step: a done env is reset in the same step; its last obs and info go in info
  `final_obs`/`final_info`;
- disabled: done envs stay done until the caller resets them.

An env that raises in `step` (with on_error="reset") ends its episode as truncated, its info
carrying `error` (type, message, traceback); it is reset as its autoreset mode says (next step,
same step, or by the caller). An env that raises in `reset` is rebuilt and reset once more.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, Iterator

import numpy as np

from rock_envs.core import pickling, rng, snapshot
from rock_envs.core.adapters import GemEnv, user_env
from rock_envs.core.batching import ObsBatcher
from rock_envs.core.errors import EnvArgumentError
from rock_envs.core.resets import call_reset
from rock_envs.core.spaces import check_same_spaces
from rock_envs.core.trajectory import to_json
from rock_envs.worker.native import NativeBlock
from rock_envs.worker.overlap import Overlap, Plan, declared_threads, drive, is_async_env
from rock_envs.worker.protocol import (
    Apply,
    AutoresetMode,
    Batch,
    Built,
    Call,
    Close,
    Failure,
    Make,
    Reply,
    Request,
    Reset,
    Restore,
    SetAttr,
    Snapshot,
    Step,
    Values,
    error_info,
)


def _get_wrapper_attr(env: Any, name: str) -> Any:
    get = getattr(env, "get_wrapper_attr", None)
    return get(name) if get is not None else getattr(env, name)


class EnvWorker:
    """The envs of one worker, and the requests that drive them (the module's docstring tells how).

    Before `Make`: it hosts no env and answers every other request with a `Failure`. After `Make`:
    it hosts the listed env ids, built by the factory. `handle(request)` yields the reply (or a
    `Step`'s partial batches, then the final one) and never raises: an exception comes back as a
    `Failure` with its type, message and traceback, and the other envs are untouched. After
    `Close`: every env is closed; a second `Close` does nothing.
    """

    def __init__(self) -> None:
        self.envs: dict[int, Any] = {}
        self._factory: Callable[[int], Any] | None = None
        self._mode = AutoresetMode.NEXT_STEP
        self._on_error = "reset"
        self._needs_reset: dict[int, bool] = {}
        self._last_obs: dict[int, Any] = {}
        self._batcher: ObsBatcher | None = None
        self._snapshot_mode: snapshot.SnapshotMode = "auto"
        self._record = False
        self._overlap: Overlap | None = None  # envs stepped at once (worker_threads > 1, or async envs)
        self._awaited: dict[int, bool] = {}  # env i has `async def step/reset`: its calls are awaited
        self._native: NativeBlock | None = None  # vectorize="native": the block's one native vector env
        self.closed = False

    # -- dispatch -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Iterator[Reply]:
        """Execute one request; yields one reply (or several partial `Batch`es for a flushing Step)."""
        try:
            if self._native is not None and not isinstance(request, (Make, Close)):
                yield self._on_native(self._native, request)
            elif isinstance(request, Step):
                yield from self._step(request)
            elif isinstance(request, Reset):
                yield self._reset(request)
            elif isinstance(request, Make):
                yield self._make(request)
            elif isinstance(request, Call):
                yield self._call(request)
            elif isinstance(request, SetAttr):
                yield self._set_attr(request)
            elif isinstance(request, Snapshot):
                yield Values([self._snapshot(i) for i in request.env_ids])
            elif isinstance(request, Restore):
                yield self._restore(request)
            elif isinstance(request, Apply):
                fn = pickling.loads(request.fn)
                yield Values([fn(user_env(self._own(i))) for i in request.env_ids])
            elif isinstance(request, Close):
                self.close()
                yield Values([])
            else:
                raise TypeError(f"EnvWorker cannot handle a {type(request).__name__}")
        except Exception as e:  # the caller re-raises it with the remote traceback
            yield Failure.from_exception(e)

    # -- requests -------------------------------------------------------------------------------

    def _make(self, request: Make) -> Built:
        for path in request.sys_path:  # after the worker's own entries: nothing of its own is shadowed
            if path not in sys.path and os.path.isdir(path):
                sys.path.append(path)
        self._factory = pickling.loads(request.factory)
        if request.native:  # the factory makes one native vector env for the whole block
            self._native = NativeBlock(self._factory(len(request.env_ids)), request.env_ids)
            return self._native.built()
        self._mode, self._on_error = request.autoreset_mode, request.on_error
        self._snapshot_mode, self._record = request.snapshot_mode, request.record
        for i in request.env_ids:
            self.envs[i] = self._build(i)
            self._needs_reset[i] = False
        made = [user_env(self.envs[i]) for i in request.env_ids]
        self._awaited = {i: is_async_env(env) for i, env in zip(request.env_ids, made)}
        threads = request.worker_threads
        if threads is None:  # neither the caller nor the spec said: the envs' own word
            threads = max(declared_threads(env) for env in made)
        if self._overlap is None and (threads > 1 or any(self._awaited.values())):
            self._overlap = Overlap(threads)
        if len({id(env) for env in made}) < len(made):
            raise EnvArgumentError(
                "`make_vec`: the env factory returned the same env object for several envs "
                f"({type(made[0]).__name__}); each env needs its own, so return a new one from every call, "
                "e.g. `lambda: gymnasium.make(...)`, not `lambda: env`."
            )
        first = self.envs[request.env_ids[0]]
        same = request.same_observation_space
        describe = getattr(self._factory, "describe", lambda i: f"env {i}")  # names the env ids of a mixed batch
        for i in request.env_ids[1:]:
            check_same_spaces(first, self.envs[i], describe(request.env_ids[0]), describe(i), same)
        self._batcher = ObsBatcher(first.observation_space)
        return Built(
            first.observation_space,
            first.action_space,
            dict(getattr(first, "metadata", {}) or {}),
            getattr(first, "render_mode", None),
            None if same else [self.envs[i].observation_space for i in request.env_ids],
        )

    def _reset(self, request: Reset) -> Batch:
        plans = [self._reset_plan(i, s, o) for i, s, o in zip(request.env_ids, request.seeds, request.options)]
        if self._overlap is not None:
            results = self._overlap.run_all([(plan, self._awaited[i]) for plan, i in zip(plans, request.env_ids)])
        else:
            results = [drive(plan) for plan in plans]
        n = len(request.env_ids)
        obs, infos = [o for o, _ in results], [info for _, info in results]
        return Batch(list(request.env_ids), self._pack(obs), [0.0] * n, [False] * n, [False] * n, infos)

    def _reset_one(
        self, i: int, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        return drive(self._reset_plan(i, seed, options))

    def _reset_plan(
        self, i: int, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> Plan[tuple[Any, dict[str, Any]]]:
        try:
            o, info = yield from self._reset_env(i, seed, options)
        except Exception as e:
            if self._on_error == "raise" or self._factory is None:
                raise
            # A reset that raises leaves the env in an unknown state: build it afresh and try once more.
            self._close_env(i)
            self.envs[i] = self._build(i)
            o, info = yield from self._reset_env(i, seed, options)
            info = {**info, "error": error_info(e)}
        self._needs_reset[i] = False
        self._last_obs[i] = o
        return o, info

    def _reset_env(self, i: int, seed: int | None, options: dict[str, Any] | None) -> Plan[tuple[Any, dict[str, Any]]]:
        env = self.envs[i]
        if self._record:  # where the episode starts, for the caller's trajectory record
            before = rng.before_reset(env, seed)
            o, info = yield lambda: call_reset(env.reset, seed, options)
            start = rng.episode_start(env, seed, options, before)
            return o, {**info, "episode_start": json.dumps(to_json(start))}  # a str: infos batch it as is
        return (yield lambda: call_reset(env.reset, seed, options))

    def _own(self, i: int) -> Any:
        """Env `i`, with Python's `random` its own (GEM envs draw from it) for a call into it."""
        env = self.envs[i]
        if isinstance(env, GemEnv):
            env.own_random()
        return env

    def _build(self, i: int) -> Any:
        assert self._factory is not None  # Make set it
        env = self._factory(i)
        snapshot.prepare(env, self._snapshot_mode)
        return env

    def _snapshot(self, i: int) -> snapshot.EnvSnapshot:
        worker = {"needs_reset": self._needs_reset[i], "last_obs": self._last_obs.get(i)}
        return snapshot.take(self.envs[i], i, worker)

    def _restore(self, request: Restore) -> Values:
        """Every snapshot is checked before any env is touched: a bad one leaves them all as they were."""
        for i, snap in zip(request.env_ids, request.snapshots):
            env_id, kwargs = snapshot.identity(self.envs[i])
            snapshot.check_fits(snap, env_id, kwargs, snapshot.describe(self.envs[i], i), "restore")
        obs = []
        for i, snap in zip(request.env_ids, request.snapshots):
            o = snapshot.restore(self.envs[i], snap, i)
            self._needs_reset[i] = bool(snap.worker.get("needs_reset", False))
            self._last_obs[i] = o
            obs.append(o)
        return Values(obs)

    def _step(self, request: Step) -> Iterator[Batch]:
        actions = request.actions
        if isinstance(actions, np.ndarray) and actions.ndim == 1 and actions.dtype.kind in "iub":
            actions = actions.tolist()  # Python scalars: cheaper for envs to check than numpy ones
        if self._overlap is not None:  # envs that wait: stepped at once
            yield from self._step_overlapped(list(request.env_ids), actions, request.flush_after)
            return
        if request.flush_after is None:  # the hot path: one reply for the whole batch
            yield self._step_all(list(request.env_ids), actions)
            return
        ids: list[int] = []
        results = []
        started = time.monotonic()
        for i, action in zip(request.env_ids, actions):
            ids.append(i)
            results.append(self._step_one(i, action))
            if time.monotonic() - started > request.flush_after:
                yield self._batch(ids, results, final=False)
                ids, results = [], []
                started = time.monotonic()
        yield self._batch(ids, results, final=True)

    def _step_overlapped(self, ids: list[int], actions: Any, flush_after: float | None) -> Iterator[Batch]:
        """Every env's step at once; one reply in env order, or (send/recv) replies as envs finish."""
        assert self._overlap is not None
        awaited = self._awaited
        if flush_after is None:
            plans = [(self._step_plan(i, a), awaited[i]) for i, a in zip(ids, actions)]
            yield self._batch(ids, self._overlap.run_all(plans), final=True)
            return
        keyed = [(i, self._step_plan(i, a), awaited[i]) for i, a in zip(ids, actions)]
        if not keyed:
            yield self._batch([], [], final=True)
        for done, results, last in self._overlap.run_each(keyed, flush_after):
            yield self._batch(done, results, final=last)

    def _step_all(self, ids: list[int], actions: Any) -> Batch:
        """`_step_one` for every env, inlined for the common case (an env in mid-episode)."""
        envs, needs, last = self.envs, self._needs_reset, self._last_obs
        inline = self._mode is not AutoresetMode.SAME_STEP
        obs: list[Any] = []
        rewards: list[float] = []
        terms: list[bool] = []
        truncs: list[bool] = []
        infos: list[dict[str, Any]] = []
        for i, a in zip(ids, actions):
            if inline and not needs[i]:
                try:
                    o, r, te, tr, info = envs[i].step(a)
                except Exception as e:
                    o, r, te, tr, info = self._failed_step(i, e)
                if te or tr:
                    needs[i] = True
                last[i] = o
            else:
                o, r, te, tr, info = self._step_one(i, a)
            obs.append(o)
            rewards.append(r)
            terms.append(te)
            truncs.append(tr)
            infos.append(info)
        return Batch(ids, self._pack(obs), rewards, terms, truncs, infos, True)

    def _failed_step(self, i: int, e: Exception) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """What a step that raised gives (on_error="reset"): the episode ends, truncated, with the error."""
        if self._on_error == "raise":
            raise e
        return self._last_obs.get(i), 0.0, False, True, {"error": error_info(e)}

    def _batch(
        self, ids: list[int], results: list[tuple[Any, float, bool, bool, dict[str, Any]]], final: bool
    ) -> Batch:
        if not results:
            return Batch(ids, self._pack([]), [], [], [], [], final)
        obs, rewards, terms, truncs, infos = zip(*results)  # lists pickle far faster than small arrays
        return Batch(ids, self._pack(list(obs)), list(rewards), list(terms), list(truncs), list(infos), final)

    def _step_one(self, i: int, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        return drive(self._step_plan(i, action))

    def _step_plan(self, i: int, action: Any) -> Plan[tuple[Any, float, bool, bool, dict[str, Any]]]:
        """One env's step with autoreset and error handling; each call into the env is yielded (`overlap`)."""
        env, mode = self.envs[i], self._mode
        if mode is AutoresetMode.NEXT_STEP and self._needs_reset[i]:
            o, info = yield from self._reset_plan(i)
            return o, 0.0, False, False, info
        try:
            o, r, te, tr, info = yield lambda: env.step(action)
        except Exception as e:
            o, r, te, tr, info = self._failed_step(i, e)
        if mode is AutoresetMode.SAME_STEP and (te or tr):
            final_obs, final_info = o, info
            o, info = yield from self._reset_plan(i)
            info = {"final_obs": final_obs, "final_info": final_info, **info}  # in the order Gymnasium adds them
            if "error" in final_info:  # the error stays visible where the other modes put it
                info["error"] = final_info["error"]
        else:
            self._needs_reset[i] = bool(te or tr)
            self._last_obs[i] = o
        return o, float(r), bool(te), bool(tr), info

    def _call(self, request: Call) -> Values:
        """As Gymnasium's vector envs do, on the env the factory made (not rock-envs' adapter around
        it): look through its wrappers; `call` calls what is callable. What only the adapter has
        (`sample_random_action` of a Gymnasium env) comes from the adapter."""
        values = []
        for i in request.env_ids:
            env = self._own(i)
            try:
                attr = _get_wrapper_attr(user_env(env), request.name)
            except AttributeError:
                attr = _get_wrapper_attr(env, request.name)
            if request.args is not None and callable(attr):
                attr = attr(*request.args, **request.kwargs)
            values.append(attr)
        return Values(values)

    def _set_attr(self, request: SetAttr) -> Values:
        """On the env the factory made, as Gymnasium does: where a wrapper of it has the attribute
        already, else on its outermost layer (never on rock-envs' adapter, which the env never sees)."""
        for i, value in zip(request.env_ids, request.values):
            target = user_env(self.envs[i])
            if hasattr(target, "set_wrapper_attr"):
                target.set_wrapper_attr(request.name, value)
            else:
                setattr(target, request.name, value)
        return Values([None] * len(request.env_ids))

    def _on_native(self, native: NativeBlock, request: Request) -> Reply:
        if isinstance(request, Step):
            return native.step(request)
        if isinstance(request, Reset):
            return native.reset(request)
        if isinstance(request, Call):
            raise native.refuse("get_attr" if request.args is None else "call")
        raise native.refuse(type(request).__name__.lower().replace("setattr", "set_attr"))

    # -- helpers --------------------------------------------------------------------------------

    def _pack(self, obs: list[Any]) -> Any:
        return self._batcher.pack(obs) if self._batcher is not None else obs

    def _close_env(self, i: int) -> None:
        try:
            self.envs[i].close()
        except Exception:  # a broken env must not stop the others from closing
            pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for i in list(self.envs):
            self._close_env(i)
        self.envs.clear()
        if self._native is not None:
            self._native.close()
        if self._overlap is not None:
            self._overlap.close()
            self._overlap = None


__all__ = ["EnvWorker", "Failure"]
