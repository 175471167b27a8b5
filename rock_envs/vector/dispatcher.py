"""The request ledger under the vector engine: what is in flight on each worker, and where replies go.

Env `i` lives on worker `worker_of[i]`; envs are split in contiguous blocks (`rock_envs.vector.blocks`). Each request sent to a
worker is a `Pending` in that worker's queue (workers answer in order), tagged with what it is
for. Replies are filed as they come: whole batches for the current call, per-env results for
send/recv, or results of envs being rebuilt after their worker died. A worker that dies is
restarted here, its envs rebuilt and re-seeded; a call past its deadline restarts the workers that
did not answer and raises `WorkerTimeoutError`. With `restore="snapshot"`, rebuilt envs that have a
snapshot kept (`keep`) are restored to it instead of reset.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from rock_envs.backends.base import WorkerGone, WorkerGroup
from rock_envs.core.errors import RemoteError, WorkerDiedError, WorkerTimeoutError
from rock_envs.core.snapshot import EnvSnapshot
from rock_envs.vector.blocks import even_blocks
from rock_envs.vector.stats import StatsLedger
from rock_envs.worker.protocol import Batch, Built, Failure, Make, Reset, Restore, Values

MAX_RESTARTS_PER_CALL = 3  # per worker: a dropped connection may take every worker at once

WORKER_RESTARTED = {
    "worker_restarted": True,
    "infra_error": {"phase": "worker", "type": "WorkerRestarted", "message": "the env's worker died and was restarted"},
}
"""What an env whose step or reset was lost with its worker carries in info: the rollout broke for
the infrastructure, not the policy (``infra_error``, as the ModelService's infra failures)."""


class Result(NamedTuple):
    """One env's answer to a step or a reset."""

    obs: Any
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]


class Purpose(enum.Enum):
    """What a request in flight is for, which says where its replies go."""

    REPLY = "reply"
    """Make, call, get_attr, set_attr: the one reply is kept on the `Pending` for the caller."""
    GATHER = "gather"
    """A step or reset of the current call (`step_wait`, `reset`): its batches go whole to `gathered`."""
    EACH = "each"
    """`send` or `async_reset`: each env's result is filed on its own in `ready`, for `recv`."""
    REBUILD = "rebuild"
    """Rebuilding a restarted worker: only the results of `owed` envs are kept (flagged
    `worker_restarted`, for callers still waiting on them); the rest are dropped."""


@dataclass
class Pending:
    """A request in flight on one worker. `remaining`: the env ids whose results are still due."""

    request: Any
    purpose: Purpose
    remaining: set[int] = field(default_factory=set)
    owed: set[int] = field(default_factory=set)
    reply: Any = None
    done: bool = False
    sent_at: float = 0.0


class Dispatcher:
    """Sends requests to the workers of `group` and files their replies.

    Before a call: `inflight` holds the env ids whose results are due (empty when idle). `pump`
    waits once and files what came; `collect` pumps until nothing is in flight and hands over the
    gathered batches; `wait_done` pumps until given requests are answered. After any of them that
    raises, the ledger is consistent: a timed-out worker was restarted and its envs are no longer
    in flight; an interrupted wait (Ctrl-C) is drained by `drain_interrupted` before the next call.
    """

    def __init__(
        self,
        group: WorkerGroup,
        num_envs: int,
        make: Make,
        restore: str = "reset",
        blocks: list[list[int]] | None = None,
    ):
        """`make`: the `Make` every worker gets (and gets again when restarted), with its own env ids;
        `restore`: how a restarted worker's envs come back ("reset", or "snapshot": their last one);
        `blocks`: worker w's env ids, contiguous (default: the envs split evenly)."""
        self.group = group
        self.num_envs = num_envs
        self.make_request = make
        self.restore_mode = restore
        self.snapshots: dict[int, EnvSnapshot] = {}  # restore="snapshot": each env's last one
        self.on_rebuilt: Callable[[list[int]], None] | None = None  # told which envs a rebuild reset
        m = group.num_workers
        self.blocks = blocks if blocks is not None else even_blocks(num_envs, m)
        assert len(self.blocks) == m and [i for b in self.blocks for i in b] == list(range(num_envs))
        self.bounds = [(block[0], block[-1] + 1) for block in self.blocks]
        self.worker_of = [w for w, block in enumerate(self.blocks) for _ in block]
        self.pending: list[deque[Pending]] = [deque() for _ in range(m)]
        self.ready: dict[int, Result] = {}  # per-env results: send/recv, and envs rebuilt mid-call
        self.gathered: list[Batch] = []  # whole batches for the current step_wait/reset
        self.failure: RemoteError | None = None  # the first error of the current call
        self.inflight: set[int] = set()
        self.seeds: list[int | None] = [None] * num_envs
        self.restarts: dict[int, int] = {}
        self.interrupted = False
        self.row: Callable[[Any, int], Any] = lambda obs, k: obs[k]  # one env's obs of a batch (set once built)
        self.stats = StatsLedger(self.blocks)  # `venv.stats()`

    # ---- sending -----------------------------------------------------------------------------

    def submit(
        self,
        w: int,
        request: Any,
        purpose: Purpose = Purpose.REPLY,
        env_ids: list[int] | None = None,
        owed: set[int] | None = None,
    ) -> Pending:
        pending = Pending(request, purpose, set(env_ids or ()), owed or set(), sent_at=time.perf_counter())
        self.pending[w].append(pending)
        self.inflight.update(pending.remaining)
        self.group.send(w, request)
        return pending

    def make(self, w: int, purpose: Purpose = Purpose.REPLY) -> Pending:
        return self.submit(w, dataclasses.replace(self.make_request, env_ids=self.blocks[w]), purpose)

    def keep(self, ids: list[int], snapshots: list[EnvSnapshot]) -> None:
        """Remember the envs' last snapshots, to rebuild them at that state (restore="snapshot")."""
        if self.restore_mode == "snapshot":
            self.snapshots.update(zip(ids, snapshots))

    def send_resets(
        self, ids: list[int], seeds: list[int | None], options: list[dict[str, Any] | None], purpose: Purpose
    ) -> None:
        """Reset `ids`, env `ids[k]` with `seeds[k]` and `options[k]`."""
        option_of = dict(zip(ids, options))
        for i, s in zip(ids, seeds):
            self.seeds[i] = s
        for w, part in self.by_worker(ids):
            self.submit(w, Reset(part, [self.seeds[i] for i in part], [option_of[i] for i in part]), purpose, part)

    def by_worker(self, ids: list[int]) -> list[tuple[int, list[int]]]:
        if len(ids) == self.num_envs and ids == list(range(self.num_envs)):
            return list(enumerate(self.blocks))
        parts: dict[int, list[int]] = {}
        worker_of = self.worker_of
        for i in ids:
            parts.setdefault(worker_of[i], []).append(i)
        return sorted(parts.items())

    # ---- waiting -----------------------------------------------------------------------------

    def collect(self, timeout: float | None, what: str) -> list[Batch]:
        """Wait for every in-flight env (the whole current call); the gathered batches, in arrival order."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.restarts.clear()
        try:
            while self.inflight:
                self.pump(deadline, what)
        except BaseException as e:
            self.gathered, self.ready, self.failure = [], {}, None
            if not isinstance(e, WorkerTimeoutError):  # e.g. Ctrl-C: the next call drains what is left
                self.interrupted = True
            raise
        batches, self.gathered = self.gathered, []
        self.raise_failure()
        return batches

    def drain_interrupted(self, timeout: float | None) -> None:
        """After a wait was interrupted (Ctrl-C), wait for what was in flight and drop it."""
        if not self.interrupted:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.inflight:
            self.pump(deadline, "drain")
        self.gathered, self.ready, self.failure = [], {}, None
        self.interrupted = False

    def raise_failure(self) -> None:
        failure, self.failure = self.failure, None
        if failure is not None:
            raise failure

    def wait_done(
        self, pendings: list[Pending], timeout: float | None, what: str, on_pump: Callable[[], None] | None = None
    ) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        self.restarts.clear()
        while not all(p.done for p in pendings):
            self.pump(deadline, what)
            if on_pump is not None:  # progress: `make_vec`'s bar
                on_pump()
        for p in pendings:
            if isinstance(p.reply, Failure):
                raise p.reply.to_error(where=f"`{what}`")
            if isinstance(p.reply, WorkerGone):
                raise WorkerDiedError(
                    f"`{what}`: a worker died while answering ({p.reply.reason}); it was restarted; call again."
                )

    def pump(self, deadline: float | None, what: str) -> None:
        """Wait for replies once, and file them. On timeout, restart the workers that did not answer."""
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            self._on_timeout(what)
        for w, reply in self.group.wait(remaining):
            if isinstance(reply, WorkerGone):
                self._on_worker_gone(w, reply)
            else:
                self._file(w, reply)

    # ---- filing ------------------------------------------------------------------------------

    def _file(self, w: int, reply: Any) -> None:
        queue = self.pending[w]
        if not queue:
            return  # a late reply to a request abandoned with its dead worker
        pending = queue[0]
        if isinstance(reply, Batch):
            self.stats.filed(w, pending.request, pending.sent_at, reply)
            if pending.remaining:  # a silent rebuild owes nobody: it must not touch `inflight`
                self.inflight.difference_update(reply.env_ids)
                pending.remaining.difference_update(reply.env_ids)
            if pending.purpose is Purpose.REBUILD:
                self._file_rebuilt(pending, reply)
            elif pending.purpose is Purpose.GATHER:
                self.gathered.append(reply)
            else:
                self._file_each(reply)
            if not reply.final:
                return
        elif isinstance(reply, Values) and pending.purpose is Purpose.REBUILD and pending.remaining:
            self._file_restored(pending, reply)
        elif isinstance(reply, Failure) and pending.purpose is Purpose.REBUILD:
            queue.popleft()
            raise WorkerDiedError(
                f"worker {w} died and its envs could not be rebuilt: {reply.type_name}: {reply.message}"
            )
        elif isinstance(reply, Failure) and pending.remaining:
            self.inflight.difference_update(pending.remaining)
            error = reply.to_error(
                f"worker {w} ({type(pending.request).__name__.lower()} of envs {sorted(pending.remaining)[:8]})"
            )
            pending.remaining.clear()
            self.failure = self.failure or error
        pending.reply, pending.done = reply, True
        queue.popleft()
        if isinstance(reply, Built):
            self.group.on_built(w, pending.request.env_ids, reply)

    def _file_each(self, batch: Batch) -> None:
        for k, i in enumerate(batch.env_ids):
            self.ready[i] = Result(
                self.row(batch.obs, k),
                float(batch.rewards[k]),
                bool(batch.terminated[k]),
                bool(batch.truncated[k]),
                batch.infos[k],
            )

    def _file_rebuilt(self, pending: Pending, batch: Batch) -> None:
        for k, i in enumerate(batch.env_ids):
            if i in pending.owed:  # its step or reset was lost with its worker: the episode ends here
                self.ready[i] = Result(self.row(batch.obs, k), 0.0, False, True, {**batch.infos[k], **WORKER_RESTARTED})

    def _file_restored(self, pending: Pending, values: Values) -> None:
        """Envs of a dead worker restored to their last snapshot: the caller waiting on them gets the
        snapshot's observation, flagged `worker_restarted` and `restored_snapshot` (not truncated: the
        episode goes on from there)."""
        self.inflight.difference_update(pending.remaining)
        pending.remaining.clear()
        for i, obs in zip(pending.request.env_ids, values.values):
            if i in pending.owed:
                self.ready[i] = Result(obs, 0.0, False, False, {**WORKER_RESTARTED, "restored_snapshot": True})

    # ---- faults ------------------------------------------------------------------------------

    def _on_timeout(self, what: str) -> None:
        late_workers = [w for w, queue in enumerate(self.pending) if queue]
        late = sorted(self.inflight) or [i for w in late_workers for i in self.blocks[w]]
        self.stats.timeouts += 1
        for w in late_workers:
            self._rebuild(w, lost=set(), keep=False)
        self.inflight.clear()
        raise WorkerTimeoutError(
            f"`{what}`: no answer within the timeout from env(s) {late[:16]}{' ...' if len(late) > 16 else ''}. "
            f"Their workers ({late_workers}) were restarted and those envs rebuilt; call `reset()` before "
            "stepping again, or raise `timeout` if the env is just slow.",
            late,
        )

    def _on_worker_gone(self, w: int, gone: WorkerGone) -> None:
        self.restarts[w] = self.restarts.get(w, 0) + 1
        if any(isinstance(p.request, Make) and p.purpose is not Purpose.REBUILD for p in self.pending[w]):
            self.pending[w].clear()
            raise WorkerDiedError(
                f"worker {w} of the {self.group.name} backend died while building its envs "
                f"({gone.reason}); check that the env can be made there."
            )
        if self.restarts[w] > MAX_RESTARTS_PER_CALL:
            self.pending[w].clear()
            raise WorkerDiedError(
                f"worker {w} of the {self.group.name} backend died {self.restarts[w]} times in one "
                f"call (last: {gone.reason}); its envs keep killing it, or it cannot start."
            )
        lost = set().union(*(p.remaining | p.owed for p in self.pending[w]))
        for p in self.pending[w]:
            p.reply, p.done = gone, True
        self._rebuild(w, lost, keep=True)

    def _rebuild(self, w: int, lost: set[int], keep: bool) -> None:
        """Replace worker `w` by a fresh one, rebuild its envs and reset them with their last seeds.

        With `keep`, the envs of `lost` (whose results the caller still waits for) answer with their
        new first obs, truncated and flagged `worker_restarted`; the others start afresh silently.
        """
        self.pending[w].clear()
        self.inflight.difference_update(self.blocks[w])
        self.stats.restarts[w] += 1
        self.group.restart(w)
        self.make(w, Purpose.REBUILD)
        kept = [i for i in self.blocks[w] if self._restorable(i)]
        if kept:  # restore="snapshot": back at their last snapshot, the episode goes on
            owed = {i for i in kept if keep and i in lost}
            request = Restore(kept, [self.snapshots[i] for i in kept])
            self.submit(w, request, Purpose.REBUILD, sorted(owed), owed)
        ids = sorted(i for i in lost if i not in kept) if keep else []
        if ids:
            self.submit(w, Reset(ids, [self.seeds[i] for i in ids], [None] * len(ids)), Purpose.REBUILD, ids, set(ids))
        others = [i for i in self.blocks[w] if i not in ids and i not in kept]
        if others:  # envs with no call in flight are rebuilt too; their next step starts a new episode
            self.submit(w, Reset(others, [self.seeds[i] for i in others], [None] * len(others)), Purpose.REBUILD)
        if self.on_rebuilt is not None:
            self.on_rebuilt([i for i in self.blocks[w] if i not in lost or not keep])

    def _restorable(self, i: int) -> bool:
        kept = self.snapshots.get(i)
        return kept is not None and kept.worker.get("last_obs") is not None
