"""WorkerGroup: how M EnvWorkers are started and reached. The transport, and nothing else.

The vector engine drives every backend through this one class: it sends typed requests
(`rock_envs.worker.protocol`) to worker `w` and waits for replies from any worker. Requests to one
worker are answered in order; several may be in flight (pipelining).

Contract:
- `start()` starts every worker; afterwards `send` and `wait` may be called.
- `send(w, request)` returns at once.
- `wait(timeout)` blocks until at least one reply (or a death) is there, or `timeout` passes, and
  returns every `(w, reply)` ready now; a worker that went away shows up as `(w, WorkerGone(...))`,
  once, and gets no more replies until `restart(w)`.
- `restart(w)` replaces worker `w` with a fresh one hosting no envs.
- `close()` stops every worker and frees what the group holds; safe to call twice.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from rock_envs.worker.protocol import Built, Reply, Request


@dataclass
class WorkerGone:
    """Worker `w` died or became unreachable; `reason` says how (exit code, signal, lost socket)."""

    reason: str


class WorkerGroup(abc.ABC):
    """M workers of one backend, each hosting a block of envs (the contract is the module's docstring).

    Before `start()`: no worker runs. After it: `send(w, request)` queues a request for worker `w`
    and returns at once; `wait(timeout)` returns every reply ready (or `WorkerGone` once per death);
    replies of one worker come in the order of its requests. After `restart(w)`: worker `w` is new
    and hosts no envs (the caller sends `Make` again). After `close()`: no worker runs, nothing is
    left behind (processes, containers, actors, shared memory); a second `close()` does nothing.
    """

    name: str = "?"

    def __init__(self, num_workers: int):
        self.num_workers = num_workers
        self._gone = [False] * num_workers  # worker w's death was reported; it gets nothing until restart(w)
        self._closed = False

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def send(self, w: int, request: Request) -> None: ...

    @abc.abstractmethod
    def wait(self, timeout: float | None) -> list[tuple[int, Reply | WorkerGone]]: ...

    @abc.abstractmethod
    def restart(self, w: int) -> None: ...

    def close(self) -> None:
        """Stop every worker and free what the group holds; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        self._close()

    @abc.abstractmethod
    def _close(self) -> None:
        """What `close` does, once: stop the workers, free processes, containers, actors, memory."""

    def local_envs(self) -> list[Any] | None:
        """The env objects themselves, by env id, where they live in this process (else None)."""
        return None

    def on_built(self, w: int, env_ids: list[int], built: Built) -> None:  # noqa: B027 - a hook, optional
        """Called once worker `w` built its envs: a backend may set up shared memory here."""

    def kill(self, w: int) -> None:
        """Kill worker `w` the hard way (tests use this to check fault handling)."""
        raise NotImplementedError(f"the {self.name} backend cannot kill a worker")

    def describe(self, w: int) -> dict[str, Any]:
        return {}
