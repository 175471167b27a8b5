"""The subprocess backend: EnvWorkers in worker processes on this machine, over unix sockets.

Array observations skip the socket: each worker writes its rows of one shared-memory array (a file
in /dev/shm mapped by both sides) and the reply carries only the env ids. Workers are started by
`rock_envs.backends.launch` (fork server by default; see there for the start methods).
"""

from __future__ import annotations

import os
import signal
import tempfile
import uuid

import numpy as np
from gymnasium import spaces

from rock_envs.backends.launch import start_worker
from rock_envs.backends.options import SubprocessOptions
from rock_envs.backends.sockets import SocketWorkers
from rock_envs.worker.protocol import Batch, Built, Reply, decode
from rock_envs.worker.shared_obs import AttachObs, map_array, rows_of


class _SharedObs:
    """The caller's side of one worker's shared observation array (see `rock_envs.worker.shared_obs`)."""

    def __init__(self, env_ids: list[int], space: spaces.Box):
        self.rows = {i: r for r, i in enumerate(env_ids)}
        self.shape = (len(env_ids), *space.shape)
        self.dtype = np.dtype(space.dtype).str
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        self.path = os.path.join(folder, f"rock-envs-{os.getpid()}-{uuid.uuid4().hex[:12]}")
        self.buffer, self.array = map_array(self.path, self.shape, self.dtype, create=True)

    def read(self, env_ids: list[int]) -> np.ndarray:
        """A copy of the rows of `env_ids` (the worker overwrites them on their next step)."""
        if not env_ids:
            return self.array[:0].copy()
        return self.array[rows_of(self.rows, env_ids)].copy()

    def free(self) -> None:
        self.array = None  # type: ignore[assignment]
        try:
            self.buffer.close()
        except BufferError:  # a view still exported somewhere: the GC unmaps it later
            pass
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class SubprocessGroup(SocketWorkers):
    name = "subprocess"

    def __init__(self, num_workers: int, options: SubprocessOptions | None = None):
        super().__init__(num_workers)
        self.options = options or SubprocessOptions()
        self.start_method = self.options.start_method
        self.shared_memory = self.options.shared_memory
        self._pids: list[int] = [0] * num_workers
        self._shared: list[_SharedObs | None] = [None] * num_workers

    def start(self) -> None:
        for w in range(self.num_workers):
            self._spawn(w)

    def _spawn(self, w: int) -> None:
        sock, pid = start_worker(self.start_method)
        self._pids[w] = pid
        self._attach(w, sock)

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
        space = built.observation_space
        if not self.shared_memory or not isinstance(space, spaces.Box):
            return
        if (old := self._shared[w]) is not None:
            old.free()
        shared = self._shared[w] = _SharedObs(env_ids, space)
        self.send(w, AttachObs(shared.path, shared.shape, shared.dtype, shared.rows))  # type: ignore[arg-type]

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

    def _close(self) -> None:
        self._close_workers()
        for w in range(self.num_workers):
            self._stop(w)
            if (shared := self._shared[w]) is not None:
                shared.free()
                self._shared[w] = None
