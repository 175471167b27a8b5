"""Worker 0 in the caller: its block is stepped in the caller's own process while the other
workers (a group of any backend) step theirs.

With one worker process per core, the caller is a third busy process on two cores: while the
workers step, it only waits, and its wake-ups and its share of a core cost more than its envs
would. Stepping a block itself keeps every core busy with no process waiting on another: worker 0
is an `EnvWorker` here, whose requests run at the first `wait()` after they were sent, once every
other worker has its own (a vector step sends to all workers, then waits). The price is isolation:
an env that crashes the process or never returns takes the caller with it, and `timeout` cannot cut
its step short. `make_vec(..., caller_worker=True)` on the subprocess backend.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

from rock_envs.backends.base import WorkerGone, WorkerGroup
from rock_envs.worker.env_worker import EnvWorker
from rock_envs.worker.protocol import Built, Failure, Reply, Request


class CallerWorkerGroup(WorkerGroup):
    """`others`' workers as workers 1..M-1, and an in-process worker as worker 0."""

    def __init__(self, others: WorkerGroup):
        super().__init__(others.num_workers + 1)
        self.others = others
        self.name = others.name
        self._worker = EnvWorker()
        self._queue: deque[Request] = deque()  # sent to worker 0, not run yet
        self._ready: list[tuple[int, Reply | WorkerGone]] = []

    def start(self) -> None:
        self.others.start()

    def send(self, w: int, request: Request) -> None:
        if w:
            self.others.send(w - 1, request)
        elif not self._gone[0]:
            self._queue.append(request)

    def wait(self, timeout: float | None) -> list[tuple[int, Reply | WorkerGone]]:
        if self._queue or self._ready:
            self._run_queued()
            ready, self._ready = self._ready, []
            return ready  # the others' replies: at the next wait, without blocking on them now
        return [(w + 1, reply) for w, reply in self.others.wait(timeout)]

    def _run_queued(self) -> None:
        while self._queue:
            request = self._queue.popleft()
            try:
                for reply in self._worker.handle(request):
                    self._ready.append((0, reply))
            except BaseException as e:  # Ctrl-C mid-step: every request owes its reply, or the caller
                for owed in [request, *self._queue]:  # would drain them forever
                    self._ready.append((0, Failure.from_exception(e) if owed is request else _interrupted(e)))
                self._queue.clear()
                raise

    def restart(self, w: int) -> None:
        if w:
            self.others.restart(w - 1)
            return
        self._worker.close()
        self._worker = EnvWorker()
        self._queue.clear()
        self._gone[0] = False

    def kill(self, w: int) -> None:
        """Lose worker `w` with what it owed; worker 0 as if its process had died."""
        if w:
            self.others.kill(w - 1)
            return
        self._queue.clear()
        self._ready = [(v, reply) for v, reply in self._ready if v]
        self._worker.close()
        self._gone[0] = True
        self._ready.append((0, WorkerGone("worker 0 (in the caller) killed")))

    def pid(self, w: int) -> int | None:
        """Worker `w`'s process id; None for worker 0, which has no process of its own."""
        return self.others.pid(w - 1) if w else None  # type: ignore[attr-defined]

    def on_built(self, w: int, env_ids: list[int], built: Built) -> None:
        if w:
            self.others.on_built(w - 1, env_ids, built)

    def describe(self, w: int) -> dict[str, Any]:
        return self.others.describe(w - 1) if w else {"where": "caller", "pid": os.getpid()}

    def _close(self) -> None:
        self._worker.close()
        self._queue.clear()
        self.others.close()


def _interrupted(e: BaseException) -> Failure:
    return Failure(type(e).__qualname__, "interrupted before it ran", "", type(e).__module__)


__all__ = ["CallerWorkerGroup"]
