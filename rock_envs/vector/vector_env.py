"""The vector engine: N envs on M workers of any backend, as one `gymnasium.vector.VectorEnv`.

Env `i` lives on worker `worker_of[i]`; envs are split in contiguous blocks. Every call sends one
request per worker (never one per env) and gathers the replies, whatever the backend.

Two ways to step:
- `step(actions)` / `step_async` + `step_wait`: every env, results in env order;
- `send(actions, env_ids)` + `recv()`: EnvPool's asynchronous mode; `recv` returns the first
  `batch_size` envs that finished, with their ids, so a slow env never holds back the others.

A worker that dies mid-call is restarted, its envs rebuilt and re-seeded with their last seed; the
call returns with those envs truncated and flagged in info (`worker_restarted`), never hangs.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rock_envs.backends.base import WorkerGone, WorkerGroup
from rock_envs.core import pickling
from rock_envs.core.spaces import is_array_space
from rock_envs.core.errors import (
    CallOrderError,
    EnvArgumentError,
    EnvClosedError,
    RemoteError,
    WorkerDiedError,
    WorkerTimeoutError,
)
from rock_envs.vector.actions import check_actions
from rock_envs.vector.infos import merge_infos
from rock_envs.worker.protocol import Batch, Built, Call, Failure, Make, Reset, SetAttr, Step

MAX_RESTARTS_PER_CALL = 3  # per worker: a dropped connection may take every worker at once

Result = tuple  # (obs, reward, terminated, truncated, info) of one env


class State(enum.Enum):
    DEFAULT = "default"
    WAITING_STEP = "step_async"


@dataclass
class _Pending:
    """A request in flight on one worker. `remaining` are the env ids whose results are still due.

    `gather`: its `Batch`es go whole to the current call (`step_wait`, `reset`), which assembles them
    with a few array concatenations; otherwise (send/recv) each env's result is filed on its own.
    `rebuild_for`: set on requests that rebuild a restarted worker's envs; only the results of those
    ids are kept (flagged `worker_restarted`), the others are dropped.
    """

    request: Any
    remaining: set[int] = field(default_factory=set)
    reply: Any = None
    done: bool = False
    gather: bool = False
    rebuild_for: set[int] | None = None


class RockVectorEnv(VectorEnv):
    def __init__(self, group: WorkerGroup, factory: Any, num_envs: int, *,
                 autoreset_mode: str = "next_step", on_error: str = "reset", batch_size: int | None = None,
                 timeout: float | None = None, flush_after: float = 0.002, spec: Any = None):
        self.num_envs = num_envs
        self.group = group
        self.timeout = timeout
        self.flush_after = flush_after
        self.batch_size = num_envs if batch_size is None else batch_size
        if not 1 <= self.batch_size <= num_envs:
            raise EnvArgumentError(f"`make_vec`: batch_size must be in 1..{num_envs}, got {batch_size}.")
        self._mode = AutoresetMode[autoreset_mode.upper()]
        self._factory_bytes = pickling.dumps(factory)
        self._on_error = on_error
        self.spec = spec
        m = group.num_workers
        self.blocks = [list(range(w * num_envs // m, (w + 1) * num_envs // m)) for w in range(m)]
        self._bounds = [(block[0], block[-1] + 1) for block in self.blocks]
        self.worker_of = [w for w, block in enumerate(self.blocks) for _ in block]
        self._pending: list[deque[_Pending]] = [deque() for _ in range(m)]
        self._ready: dict[int, Result] = {}  # per-env results: send/recv, and envs rebuilt mid-call
        self._gathered: list[Batch] = []  # whole batches for the current step_wait/reset
        self._failure: RemoteError | None = None  # the first error of the current call
        self._inflight: set[int] = set()
        self._seeds: list[int | None] = [None] * num_envs
        self._restarts: dict[int, int] = {}
        self._interrupted = False
        self._state = State.DEFAULT
        self.closed = False
        group.start()
        try:
            built = self._build_all()
        except BaseException:
            group.close()
            raise
        self.single_observation_space = built.observation_space
        self.single_action_space = built.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {**built.metadata, "autoreset_mode": self._mode}
        self.render_mode = built.render_mode
        self._stack = is_array_space(built.observation_space)
        self._last_obs: Any = None  # the last obs of every env (array or tuple), for masked resets

    @property
    def autoreset_mode(self) -> AutoresetMode:
        return self._mode

    # ---- the Gymnasium API -------------------------------------------------------------------

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset every env (or those of `options["reset_mask"]`); an int `seed` seeds env i with seed + i."""
        self._check_open("reset")
        self._drain_interrupted()
        if self._inflight or self._state is not State.DEFAULT:
            raise CallOrderError("`reset`: calls are still in flight (`step_async` or `send` without its wait); "
                                 "call `step_wait()` or `recv()` first.")
        ids = self._reset_ids(options)
        self._send_resets(ids, seed, options, gather=True)
        obs, _, _, _, infos = self._collect(ids, self.timeout, "reset")
        return obs, infos

    def step(self, actions: Any):
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: Any) -> None:
        self._check_open("step_async")
        self._drain_interrupted()
        if self._state is not State.DEFAULT or self._inflight:
            raise CallOrderError("`step_async`: a previous `step_async` (or `send`) is still pending; "
                                 "call `step_wait()` (or `recv()`) first.")
        actions = check_actions("step", actions, self.num_envs, self.single_action_space)
        if isinstance(actions, np.ndarray) and actions.ndim == 1:
            actions = actions.tolist()  # Python scalars pickle fast, and envs check them fast
        for w, (lo, hi) in enumerate(self._bounds):
            block = self.blocks[w]
            self._submit(w, Step(block, actions[lo:hi], None), block, gather=True)
        self._state = State.WAITING_STEP

    def step_wait(self, timeout: float | None = None):
        """Wait for the step sent by `step_async`; `timeout` (seconds) overrides the vector env's."""
        self._check_open("step_wait")
        if self._state is not State.WAITING_STEP:
            raise CallOrderError("`step_wait`: no step is pending; call `step_async(actions)` first.")
        try:
            return self._collect(list(range(self.num_envs)), self.timeout if timeout is None else timeout, "step_wait")
        finally:
            self._state = State.DEFAULT

    # ---- EnvPool's asynchronous mode --------------------------------------------------------

    def send(self, actions: Any, env_ids: Sequence[int] | np.ndarray | None = None) -> None:
        """Step `env_ids` (default: all) with `actions`; returns at once. Collect with `recv`.

        A worker steps its envs one after another and sends what it has every `flush_after`
        seconds, so a slow env never holds back the envs of other workers; envs that share its
        worker and come after it in this call wait for it (one env per worker avoids even that).
        """
        self._check_open("send")
        if self._state is not State.DEFAULT:
            raise CallOrderError("`send`: a `step_async` is pending; call `step_wait()` first.")
        ids = self._check_ids("send", env_ids)
        busy = sorted(self._inflight.intersection(ids))
        if busy:
            raise CallOrderError(f"`send`: envs {busy[:8]} still have a step in flight; `recv()` them first.")
        actions = check_actions("send", actions, len(ids), self.single_action_space)
        position = {i: k for k, i in enumerate(ids)}
        for w, part in self._by_worker(ids):
            if isinstance(actions, np.ndarray):
                chunk = actions[[position[i] for i in part]]
            else:
                chunk = [actions[position[i]] for i in part]
            self._submit(w, Step(part, chunk, self.flush_after), part)

    def async_reset(self, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None) -> None:
        """Reset every env without waiting; the results come out of `recv`."""
        self._check_open("async_reset")
        if self._inflight or self._state is not State.DEFAULT:
            raise CallOrderError("`async_reset`: calls are still in flight; `recv()` them first.")
        self._send_resets(list(range(self.num_envs)), seed, options, gather=False)

    def recv(self, timeout: float | None = None):
        """The first `batch_size` envs that finished: `(env_ids, obs, rewards, terminations, truncations, infos)`."""
        self._check_open("recv")
        want = min(self.batch_size, len(self._inflight) + len(self._ready))
        if want == 0:
            raise CallOrderError("`recv`: nothing is in flight; call `send(actions, env_ids)` first.")
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        self._restarts.clear()
        while len(self._ready) < want:
            self._pump(deadline, "recv")
            self._raise_failure()
        ids = list(self._ready)[:want]
        results = [self._ready.pop(i) for i in ids]
        self._remember_obs(ids, [r[0] for r in results])
        obs = np.stack([r[0] for r in results]) if self._stack else tuple(r[0] for r in results)
        rewards, terms, truncs, infos = self._columns(results, len(ids), range(len(ids)))
        return np.asarray(ids, dtype=np.int64), obs, rewards, terms, truncs, infos

    # ---- call / get_attr / set_attr --------------------------------------------------------

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        return self._call_all("call", Call([], name, args, kwargs))

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return self._call_all("get_attr", Call([], name, None))

    def set_attr(self, name: str, values: Any) -> None:
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise EnvArgumentError(f"`set_attr({name!r})`: expected {self.num_envs} values, got {len(values)}.")
        self._call_all("set_attr", SetAttr([], name, list(values)))

    def _call_all(self, what: str, template: Call | SetAttr) -> tuple[Any, ...]:
        self._check_open(what)
        if self._inflight or self._state is not State.DEFAULT:
            raise CallOrderError(f"`{what}`: steps are still in flight; wait for them first.")
        pendings = []
        for w, block in enumerate(self.blocks):
            if isinstance(template, SetAttr):
                request: Any = SetAttr(block, template.name, [template.values[i] for i in block])
            else:
                request = Call(block, template.name, template.args, template.kwargs)
            pendings.append(self._submit(w, request))
        self._wait_done(pendings, what)
        return tuple(v for p in pendings for v in p.reply.values)

    # ---- sending -----------------------------------------------------------------------------

    def _send_resets(self, ids: list[int], seed: Any, options: dict[str, Any] | None, gather: bool) -> None:
        seeds = self._seeds_for(ids, seed)
        env_options = {k: v for k, v in (options or {}).items() if k != "reset_mask"} or None
        for i, s in zip(ids, seeds):
            self._seeds[i] = s
        for w, part in self._by_worker(ids):
            self._submit(w, Reset(part, [self._seeds[i] for i in part], [env_options] * len(part)), part, gather=gather)

    def _submit(self, w: int, request: Any, env_ids: list[int] | None = None, gather: bool = False) -> _Pending:
        pending = _Pending(request, set(env_ids or ()), gather=gather)
        self._pending[w].append(pending)
        self._inflight.update(pending.remaining)
        self.group.send(w, request)
        return pending

    def _by_worker(self, ids: list[int]) -> list[tuple[int, list[int]]]:
        if len(ids) == self.num_envs and ids == list(range(self.num_envs)):
            return list(enumerate(self.blocks))
        parts: dict[int, list[int]] = {}
        worker_of = self.worker_of
        for i in ids:
            parts.setdefault(worker_of[i], []).append(i)
        return sorted(parts.items())

    # ---- receiving ---------------------------------------------------------------------------

    def _collect(self, ids: list[int], timeout: float | None, what: str):
        """Wait for every in-flight env (the whole current call), then assemble rows `ids`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._restarts.clear()
        try:
            while self._inflight:
                self._pump(deadline, what)
        except BaseException as e:
            self._gathered, self._ready = [], {}
            self._failure = None
            if not isinstance(e, WorkerTimeoutError):  # e.g. Ctrl-C: the next call drains what is left
                self._interrupted = True
            raise
        batches, self._gathered = self._gathered, []
        self._raise_failure()
        return self._assemble(ids, batches)

    def _drain_interrupted(self) -> None:
        """After a wait was interrupted (Ctrl-C), wait for what was in flight and drop it."""
        if not self._interrupted:
            return
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while self._inflight:
            self._pump(deadline, "drain")
        self._gathered, self._ready, self._failure = [], {}, None
        self._interrupted = False

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _wait_done(self, pendings: list[_Pending], what: str) -> None:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        self._restarts.clear()
        while not all(p.done for p in pendings):
            self._pump(deadline, what)
        for p in pendings:
            if isinstance(p.reply, Failure):
                raise RemoteError(p.reply.type_name, p.reply.message, p.reply.traceback, where=f"`{what}`")
            if isinstance(p.reply, WorkerGone):
                raise WorkerDiedError(f"`{what}`: a worker died while answering ({p.reply.reason}); "
                                      "it was restarted; call again.")

    def _pump(self, deadline: float | None, what: str) -> None:
        """Wait for replies once, and file them. On timeout, restart the workers that did not answer."""
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            self._on_timeout(what)
        for w, reply in self.group.wait(remaining):
            if isinstance(reply, WorkerGone):
                self._on_worker_gone(w, reply)
            else:
                self._file(w, reply)

    def _on_timeout(self, what: str) -> None:
        late_workers = [w for w, queue in enumerate(self._pending) if queue]
        late = sorted(self._inflight) or [i for w in late_workers for i in self.blocks[w]]
        for w in late_workers:
            self._rebuild(w, lost=set(), keep=False)
        self._inflight.clear()
        raise WorkerTimeoutError(
            f"`{what}`: no answer within the timeout from env(s) {late[:16]}{' ...' if len(late) > 16 else ''}. "
            f"Their workers ({late_workers}) were restarted and those envs rebuilt; call `reset()` before "
            "stepping again, or raise `timeout` if the env is just slow.", late)

    def _file(self, w: int, reply: Any) -> None:
        queue = self._pending[w]
        if not queue:
            return  # a late reply to a request abandoned with its dead worker
        pending = queue[0]
        if isinstance(reply, Batch):
            if pending.remaining:  # a silent rebuild owes nobody: it must not touch `_inflight`
                self._inflight.difference_update(reply.env_ids)
                pending.remaining.difference_update(reply.env_ids)
            if pending.rebuild_for is not None:
                self._file_rebuilt(pending, reply)
            elif pending.gather:
                self._gathered.append(reply)
            else:
                self._file_each(reply)
            if not reply.final:
                return
        elif isinstance(reply, Failure) and pending.rebuild_for is not None:
            queue.popleft()
            raise WorkerDiedError(f"worker {w} died and its envs could not be rebuilt: {reply.type_name}: {reply.message}")
        elif isinstance(reply, Failure) and pending.remaining:
            self._inflight.difference_update(pending.remaining)
            error = RemoteError(reply.type_name, reply.message, reply.traceback,
                                where=f"worker {w} ({type(pending.request).__name__.lower()} of envs "
                                      f"{sorted(pending.remaining)[:8]})")
            pending.remaining.clear()
            self._failure = self._failure or error
        pending.reply, pending.done = reply, True
        queue.popleft()
        if isinstance(reply, Built):
            self.group.on_built(w, pending.request.env_ids, reply)

    def _file_each(self, batch: Batch) -> None:
        for k, i in enumerate(batch.env_ids):
            self._ready[i] = (batch.obs[k], float(batch.rewards[k]), bool(batch.terminated[k]),
                              bool(batch.truncated[k]), batch.infos[k])

    def _file_rebuilt(self, pending: _Pending, batch: Batch) -> None:
        assert pending.rebuild_for is not None
        for k, i in enumerate(batch.env_ids):
            if i in pending.rebuild_for:  # its step or reset was lost with its worker: the episode ends here
                self._ready[i] = (batch.obs[k], 0.0, False, True, {**batch.infos[k], "worker_restarted": True})

    def _on_worker_gone(self, w: int, gone: WorkerGone) -> None:
        self._restarts[w] = self._restarts.get(w, 0) + 1
        if any(isinstance(p.request, Make) and p.rebuild_for is None for p in self._pending[w]):
            self._pending[w].clear()
            raise WorkerDiedError(f"worker {w} of the {self.group.name} backend died while building its envs "
                                  f"({gone.reason}); check that the env can be made there.")
        if self._restarts[w] > MAX_RESTARTS_PER_CALL:
            self._pending[w].clear()
            raise WorkerDiedError(f"worker {w} of the {self.group.name} backend died {self._restarts[w]} times in one "
                                  f"call (last: {gone.reason}); its envs keep killing it, or it cannot start.")
        lost = set().union(*(p.remaining | (p.rebuild_for or set()) for p in self._pending[w]))
        for p in self._pending[w]:
            p.reply, p.done = gone, True
        self._rebuild(w, lost, keep=True)

    def _rebuild(self, w: int, lost: set[int], keep: bool) -> None:
        """Replace worker `w` by a fresh one, rebuild its envs and reset them with their last seeds.

        With `keep`, the envs of `lost` (whose results the caller still waits for) answer with their
        new first obs, truncated and flagged `worker_restarted`; the others start afresh silently.
        """
        self._pending[w].clear()
        self._inflight.difference_update(self.blocks[w])
        self.group.restart(w)
        make = Make(self.blocks[w], self._factory_bytes, self._mode.name.lower(), self._on_error)
        self._submit(w, make).rebuild_for = set()
        ids = sorted(lost) if keep else []
        if ids:
            reset = self._submit(w, Reset(ids, [self._seeds[i] for i in ids], [None] * len(ids)), ids)
            reset.rebuild_for = set(ids)
        others = [i for i in self.blocks[w] if i not in ids]
        if others:  # envs with no call in flight are rebuilt too; their next step starts a new episode
            self._submit(w, Reset(others, [self._seeds[i] for i in others], [None] * len(others))).rebuild_for = set()

    def _build_all(self) -> Built:
        pendings = [self._submit(w, Make(block, self._factory_bytes, self._mode.name.lower(), self._on_error))
                    for w, block in enumerate(self.blocks)]
        self._wait_done(pendings, "make_vec")
        return pendings[0].reply

    # ---- assembling --------------------------------------------------------------------------

    def _assemble(self, ids: list[int], batches: list[Batch]):
        """Rows `ids` from whole batches (and per-env results of rebuilt envs), as Gymnasium returns them."""
        n = self.num_envs
        got = [i for b in batches for i in b.env_ids]
        if not self._ready and got == ids:  # the hot path: batches cover `ids` in order
            if self._stack:
                obs: Any = batches[0].obs.copy() if len(batches) == 1 else np.concatenate([b.obs for b in batches])
            else:
                obs = tuple(o for b in batches for o in b.obs)
            infos_list = [info for b in batches for info in b.infos]
            if len(ids) == n:
                if len(batches) == 1:
                    b = batches[0]
                    rewards = np.array(b.rewards, dtype=np.float64)
                    terms = np.array(b.terminated, dtype=np.bool_)
                    truncs = np.array(b.truncated, dtype=np.bool_)
                else:
                    rewards = np.array([r for b in batches for r in b.rewards], dtype=np.float64)
                    terms = np.array([t for b in batches for t in b.terminated], dtype=np.bool_)
                    truncs = np.array([t for b in batches for t in b.truncated], dtype=np.bool_)
                infos = merge_infos(infos_list, n) if any(infos_list) else {}
                self._last_obs = obs
                return obs, rewards, terms, truncs, infos
            results = [(obs[k], b.rewards[j], b.terminated[j], b.truncated[j], b.infos[j])
                       for k, (b, j) in enumerate((b, j) for b in batches for j in range(len(b.env_ids)))]
        else:
            by_id: dict[int, Result] = {}
            for b in batches:
                for k, i in enumerate(b.env_ids):
                    by_id[i] = (b.obs[k], b.rewards[k], b.terminated[k], b.truncated[k], b.infos[k])
            by_id.update(self._ready)
            self._ready = {}
            results = [by_id[i] for i in ids]
        self._remember_obs(ids, [r[0] for r in results])
        obs = self._last_obs
        if self._stack:
            obs = obs.copy() if len(ids) < n else obs
        rewards, terms, truncs, infos = self._columns(results, n, ids)
        return obs, rewards, terms, truncs, infos

    def _remember_obs(self, ids: Sequence[int], rows: list[Any]) -> None:
        """Update the last obs of `ids`; a masked reset answers for every env, with these."""
        if self._stack:
            if len(ids) == self.num_envs and list(ids) == list(range(self.num_envs)):
                self._last_obs = np.stack(rows)
                return
            if self._last_obs is None:
                self._last_obs = np.zeros(self.observation_space.shape, dtype=self.observation_space.dtype)
            else:
                self._last_obs = self._last_obs.copy()
            if rows:
                self._last_obs[list(ids)] = np.stack(rows)
        else:
            last = list(self._last_obs) if self._last_obs is not None else [None] * self.num_envs
            for i, o in zip(ids, rows):
                last[i] = o
            self._last_obs = tuple(last)

    def _columns(self, results: list[Result], n: int, positions: Sequence[int]):
        rewards = np.zeros(n, dtype=np.float64)
        terms = np.zeros(n, dtype=np.bool_)
        truncs = np.zeros(n, dtype=np.bool_)
        pos = list(positions)
        if results:
            rewards[pos] = [r[1] for r in results]
            terms[pos] = [r[2] for r in results]
            truncs[pos] = [r[3] for r in results]
        infos = merge_infos([r[4] for r in results], n, pos)
        return rewards, terms, truncs, infos

    # ---- small helpers -----------------------------------------------------------------------

    def _reset_ids(self, options: dict[str, Any] | None) -> list[int]:
        mask = (options or {}).get("reset_mask")
        if mask is None:
            return list(range(self.num_envs))
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
            raise EnvArgumentError(f"`reset`: options['reset_mask'] must be a bool array of shape ({self.num_envs},), "
                                   f"got {mask.dtype} with shape {mask.shape}.")
        return [int(i) for i in np.flatnonzero(mask)]

    def _seeds_for(self, ids: list[int], seed: Any) -> list[int | None]:
        if seed is None:
            return [None] * len(ids)
        if isinstance(seed, (int, np.integer)):
            return [int(seed) + i for i in ids]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise EnvArgumentError(f"`reset`: expected an int or {self.num_envs} seeds, got {len(seeds)} seeds.")
        return [seeds[i] for i in ids]

    def _check_ids(self, call: str, env_ids: Any) -> list[int]:
        if env_ids is None:
            return list(range(self.num_envs))
        ids = [int(i) for i in np.asarray(env_ids).reshape(-1)]
        bad = [i for i in ids if not 0 <= i < self.num_envs]
        if bad or len(set(ids)) != len(ids):
            raise EnvArgumentError(f"`{call}`: env_ids must be distinct ints in 0..{self.num_envs - 1}, got {list(env_ids)[:16]}.")
        return ids

    def _check_open(self, call: str) -> None:
        if self.closed:
            raise EnvClosedError(f"`{call}` after `close()`: this vector env is closed; make a new one with `rock_envs.make_vec`.")

    def close_extras(self, **kwargs: Any) -> None:
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
        spec_id = getattr(self.spec, "id", "?")
        return f"RockVectorEnv({spec_id!r}, num_envs={self.num_envs}, backend={self.group.name!r}, workers={self.group.num_workers})"

