"""The subprocess backend: EnvWorkers in worker processes on this machine, over unix sockets.

Array observations skip the socket: each worker writes its rows of one shared-memory array (a file
in /dev/shm mapped by both sides) and the reply carries only the env ids. Each worker also gets a
lane (`rock_envs.worker.lane`): its messages are announced through shared counters and semaphores
instead of woken on the socket, and a whole-block step of array actions goes through shared columns.
Workers are started by `rock_envs.backends.launch` (fork server by default; see there for the start
methods).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from rock_envs.backends.base import WorkerGone
from rock_envs.backends.launch import start_worker
from rock_envs.backends.options import SubprocessOptions
from rock_envs.backends.sockets import SocketWorkers
from rock_envs.core.batching import ObsBatcher
from rock_envs.worker import lane as lanes
from rock_envs.worker.protocol import Batch, Built, Reply, Request, decode
from rock_envs.worker.shared_obs import AttachObs, map_leaves, rows_of, shm_path, unlink_quietly


class _SharedObs:
    """The caller's side of one worker's shared observations (see `rock_envs.worker.shared_obs`)."""

    def __init__(self, env_ids: list[int], batcher: ObsBatcher):
        self.rows = {i: r for r, i in enumerate(env_ids)}
        self.every = list(env_ids)
        self.batcher = batcher
        self.layout = batcher.leaf_layout(len(env_ids))
        self.path = shm_path()
        self.buffer, self.leaves = map_leaves(self.path, self.layout, create=True)

    def read(self, env_ids: list[int]) -> Any:
        """A copy of the rows of `env_ids` (the worker overwrites them on their next step)."""
        rows: slice | list[int] = rows_of(self.rows, env_ids, self.every) if env_ids else slice(0, 0)
        return self.batcher.from_leaves([leaf[rows].copy() for leaf in self.leaves])

    def free(self) -> None:
        self.leaves = []
        try:
            self.buffer.close()
        except BufferError:  # a view still exported somewhere: the GC unmaps it later
            pass
        unlink_quietly(self.path)


class SubprocessGroup(SocketWorkers):
    name = "subprocess"

    def __init__(self, num_workers: int, options: SubprocessOptions | None = None):
        super().__init__(num_workers)
        self.options = options or SubprocessOptions()
        self.start_method = self.options.start_method
        self.shared_memory = self.options.shared_memory
        self._pids: list[int] = [0] * num_workers
        self._shared: list[_SharedObs | None] = [None] * num_workers
        self._lanes: list[lanes.CallerLane | None] = [None] * num_workers
        self._bell: lanes.Doorbell | None = None

    def start(self) -> None:
        if self.shared_memory and lanes.available():
            self._bell = lanes.Doorbell()
        for w in range(self.num_workers):
            self._spawn(w)

    def _spawn(self, w: int) -> None:
        sock, pid = start_worker(self.start_method)
        self._pids[w] = pid
        if self._bell is not None:
            lane = self._lanes[w] = lanes.CallerLane()
            try:
                lane.offer(sock, self._bell, self.options.spin)
            except OSError:
                pass  # the worker is gone already: wait() reports it
        self._attach(w, sock)

    def send(self, w: int, request: Request) -> None:
        lane = self._lanes[w]
        if lane is None or self._gone[w]:
            super().send(w, request)
        elif not lane.post_step(request):
            lane.announce()
            super().send(w, request)
            lane.ring()

    def wait(self, timeout: float | None) -> list[tuple[int, Reply | WorkerGone]]:
        """With lanes: what the counters announce, checked for `spin` s, then slept for on the
        doorbell; a socket found readable with nothing announced is a worker gone (EOF)."""
        bell = self._bell
        if bell is None:
            return super().wait(timeout)
        deadline = None if timeout is None else time.perf_counter() + timeout
        out: list[tuple[int, Reply | WorkerGone]] = []

        def ready() -> bool:
            out.extend(self._announced())
            return bool(out)

        while not lanes.wait_spinning(ready, bell.sem, self.options.spin, lanes.SLEEP_SLICE, deadline):
            silent = self._readable(self._poll.poll(0))
            if silent or (deadline is not None and time.perf_counter() >= deadline):
                return silent
        return out

    def _announced(self) -> list[tuple[int, Reply | WorkerGone]]:
        out: list[tuple[int, Reply | WorkerGone]] = []
        for w, lane in enumerate(self._lanes):
            if lane is None or self._gone[w]:
                continue
            got = lane.next_reply()
            if got == "frame":
                out.append((w, self._receive(w)))
            elif isinstance(got, Batch):
                shared = self._shared[w]
                assert shared is not None  # columns exist only beside shared observations
                got.obs = shared.read(got.env_ids)
                out.append((w, got))
        return out

    def _gone_reason(self, w: int) -> str:
        return f"worker process {self._pids[w]} went away ({self._exit_reason(w)})"

    def _exit_reason(self, w: int) -> str:
        try:
            pid, status = os.waitpid(self._pids[w], os.WNOHANG)
        except ChildProcessError:
            return "its socket closed"
        if pid and os.WIFSIGNALED(status):
            return f"killed by signal {os.WTERMSIG(status)}"
        if pid and os.WIFEXITED(status):
            return f"exit code {os.WEXITSTATUS(status)}"
        return "its socket closed"

    def _decode(self, w: int, data: bytes) -> Reply:
        reply = decode(data)
        shared = self._shared[w]
        if isinstance(reply, Batch) and reply.obs is None and shared is not None:
            reply.obs = shared.read(reply.env_ids)
        return reply  # type: ignore[return-value]

    def on_built(self, w: int, env_ids: list[int], built: Built) -> None:
        batcher = ObsBatcher(built.observation_space)
        if not self.shared_memory or batcher.kind == "items":
            return
        if (old := self._shared[w]) is not None:
            old.free()
        shared = self._shared[w] = _SharedObs(env_ids, batcher)
        self.send(w, AttachObs(shared.path, shared.layout, shared.rows))  # type: ignore[arg-type]
        lane, action = self._lanes[w], lanes.action_layout(built.action_space)
        if lane is not None and action is not None:
            self.send(w, lane.attach_columns(env_ids, action))  # type: ignore[arg-type]  # transport-private

    def restart(self, w: int) -> None:
        self._stop(w)
        self._spawn(w)

    def kill(self, w: int) -> None:
        os.kill(self._pids[w], signal.SIGKILL)

    def pid(self, w: int) -> int:
        return self._pids[w]

    def _stop(self, w: int) -> None:
        if self._conns[w] is None:
            return
        self._drop(w)  # the worker sees EOF and exits; if it is stuck in a step, make sure
        try:
            os.kill(self._pids[w], signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._free_lane(w)

    def _free_lane(self, w: int) -> None:
        if (lane := self._lanes[w]) is not None:
            lane.free()
            self._lanes[w] = None

    def _close(self) -> None:
        self._close_workers()
        for w in range(self.num_workers):
            self._stop(w)
            self._free_lane(w)  # `_stop` does nothing for a worker `_close_workers` dropped
            if (shared := self._shared[w]) is not None:
                shared.free()
                self._shared[w] = None
        if self._bell is not None:
            self._bell.free()
            self._bell = None
