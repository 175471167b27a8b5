"""The local backend: EnvWorkers in the caller's process. Each request runs when it is sent."""

from __future__ import annotations

from collections import deque
from typing import Any

from rock_envs.backends.base import WorkerGone, WorkerGroup
from rock_envs.backends.options import LocalOptions
from rock_envs.core.adapters import user_env
from rock_envs.worker.env_worker import EnvWorker
from rock_envs.worker.protocol import Reply, Request


class LocalGroup(WorkerGroup):
    name = "local"

    def __init__(self, num_workers: int = 1, options: LocalOptions | None = None):
        super().__init__(num_workers)
        self._workers: list[EnvWorker] = []
        self._ready: deque[tuple[int, Reply | WorkerGone]] = deque()

    def start(self) -> None:
        self._workers = [EnvWorker() for _ in range(self.num_workers)]

    def send(self, w: int, request: Request) -> None:
        if self._gone[w]:
            return  # like a dead process: nothing answers until `restart(w)`
        for reply in self._workers[w].handle(request):
            self._ready.append((w, reply))

    def wait(self, timeout: float | None) -> list[tuple[int, Reply | WorkerGone]]:
        ready, self._ready = list(self._ready), deque()
        return ready

    def restart(self, w: int) -> None:
        self._workers[w].close()
        self._workers[w] = EnvWorker()
        self._gone[w] = False

    def kill(self, w: int) -> None:
        """Lose worker `w` with every reply it still owed, as if its process had died."""
        self._ready = deque((v, reply) for v, reply in self._ready if v != w)
        self._workers[w].close()
        self._gone[w] = True
        self._ready.append((w, WorkerGone("worker killed (local backend)")))

    def local_envs(self) -> list[Any]:
        envs = {i: env for worker in self._workers for i, env in worker.envs.items()}
        return [user_env(envs[i]) for i in sorted(envs)]

    def _close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._ready.clear()
