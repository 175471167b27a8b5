"""What a vector env has done: `venv.stats()`, and the same numbers for Prometheus (`make_vec(..., metrics=True)`).

The dispatcher feeds a `StatsLedger` as replies are filed (a few integer additions per batch, one
clock read per request); `snapshot()` turns it into a `VectorStats` when asked. With
`metrics=True` a collector on prometheus_client's default registry reads the same ledger at every
scrape, so a trainer that already serves its own metrics (or `rock_envs.serve_metrics(port)`)
shows env throughput beside them. Labels: `venv` (a number per vector env made with metrics in
this process), `env` (the env id) and `worker` (its index): no env ids of single envs, nothing
that grows with time.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable

from rock_envs.worker.protocol import Batch, Reset, Step

LATENCY_SAMPLES = 512  # per worker: the p50/p99 are over the last this many step requests
RATE_WINDOW = 10.0  # seconds `steps_per_second` looks back
_numbers = itertools.count()


@dataclass(frozen=True)
class WorkerStats:
    """One worker of a vector env."""

    worker: int
    envs: int
    """Envs it hosts."""
    steps: int
    """Env steps it answered."""
    restarts: int
    """Times it died or timed out and was replaced."""
    step_p50_ms: float | None
    """Median milliseconds from sending a step request to its last reply (None before any step)."""
    step_p99_ms: float | None


@dataclass(frozen=True)
class VectorStats:
    """`venv.stats()`: counts since the vector env was made, a recent rate, and each worker."""

    steps: int
    """Env steps answered (a `step` of 64 envs is 64)."""
    resets: int
    """Env resets answered (autoresets inside a step are not counted; rebuilds after a restart are)."""
    steps_per_second: float
    """Env steps per second over the last `window` seconds (or since the first step, if sooner)."""
    window: float
    restarts: int
    env_errors: int
    """Steps and resets whose env raised (its info carried `error`)."""
    timeouts: int
    """Calls that ran past their timeout."""
    workers: tuple[WorkerStats, ...]


class StatsLedger:
    """Counters the dispatcher bumps; read by `snapshot()` and by the Prometheus collector."""

    def __init__(self, blocks: list[list[int]]):
        self.envs = [len(block) for block in blocks]
        self.steps = [0] * len(blocks)
        self.restarts = [0] * len(blocks)
        self.latency: list[deque[float]] = [deque(maxlen=LATENCY_SAMPLES) for _ in blocks]
        self.resets = self.env_errors = self.timeouts = 0
        self.samples: deque[tuple[float, int]] = deque()  # (time, total steps), one per 50 ms at most
        self.total = 0

    def filed(self, w: int, request: Any, sent_at: float, batch: Batch) -> None:
        """A batch of replies to `request` (sent at `sent_at`, a `time.perf_counter()`) from worker `w`."""
        n = len(batch.env_ids)
        if isinstance(request, Step):
            self.steps[w] += n
            self.total += n
            now = time.perf_counter()
            if batch.final:
                self.latency[w].append(now - sent_at)
            if not self.samples or now - self.samples[-1][0] >= 0.05:
                self.samples.append((now, self.total))
                while now - self.samples[0][0] > RATE_WINDOW * 2:
                    self.samples.popleft()
        elif isinstance(request, Reset):
            self.resets += n
        if any(batch.infos):
            self.env_errors += sum(1 for info in batch.infos if "error" in info)

    def rate(self, window: float = RATE_WINDOW) -> float:
        now = time.perf_counter()
        recent = [(t, s) for t, s in self.samples if now - t <= window]
        if not recent:
            return 0.0
        first_t, first_s = recent[0]
        span = now - first_t
        return (self.total - first_s) / span if span > 0 else 0.0

    def snapshot(self, window: float = RATE_WINDOW) -> VectorStats:
        workers = []
        for w, envs in enumerate(self.envs):
            times = sorted(self.latency[w])
            p50 = times[len(times) // 2] * 1000 if times else None
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000 if times else None
            workers.append(WorkerStats(w, envs, self.steps[w], self.restarts[w], p50, p99))
        return VectorStats(
            steps=self.total,
            resets=self.resets,
            steps_per_second=self.rate(window),
            window=window,
            restarts=sum(self.restarts),
            env_errors=self.env_errors,
            timeouts=self.timeouts,
            workers=tuple(workers),
        )


class VectorCollector:
    """One vector env's numbers on prometheus_client's default registry, until `unregister()`."""

    def __init__(self, ledger: StatsLedger, env: str, registry: Any = None):
        from prometheus_client import REGISTRY

        self.ledger, self.labels = ledger, [str(next(_numbers)), env]
        self.registry = registry or REGISTRY
        self.registry.register(self)

    def unregister(self) -> None:
        try:
            self.registry.unregister(self)
        except KeyError:
            pass  # already gone

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        ledger, labels = self.ledger, self.labels
        snap = ledger.snapshot()
        names = ["venv", "env"]
        for name, help_text, value in (
            ("steps", "Env steps answered.", snap.steps),
            ("resets", "Env resets answered.", snap.resets),
            ("restarts", "Workers replaced after dying or timing out.", snap.restarts),
            ("env_errors", "Steps and resets whose env raised.", snap.env_errors),
            ("timeouts", "Calls that ran past their timeout.", snap.timeouts),
        ):
            counter = CounterMetricFamily(f"rock_envs_vector_{name}", help_text, labels=names)
            counter.add_metric(labels, value)
            yield counter
        rate = GaugeMetricFamily(
            "rock_envs_vector_steps_per_second", f"Env steps per second over the last {RATE_WINDOW:g} s.", labels=names
        )
        rate.add_metric(labels, snap.steps_per_second)
        yield rate
        envs = GaugeMetricFamily("rock_envs_vector_worker_envs", "Envs a worker hosts.", labels=[*names, "worker"])
        latency = GaugeMetricFamily(
            "rock_envs_vector_step_latency_seconds",
            f"A worker's step round trip, p50 and p99 over its last {LATENCY_SAMPLES} steps.",
            labels=[*names, "worker", "quantile"],
        )
        for w in snap.workers:
            envs.add_metric([*labels, str(w.worker)], w.envs)
            for q, ms in (("0.5", w.step_p50_ms), ("0.99", w.step_p99_ms)):
                if ms is not None:
                    latency.add_metric([*labels, str(w.worker), q], ms / 1000)
        yield envs
        yield latency


_servers: dict[int, Any] = {}
_servers_lock = threading.Lock()


def serve_metrics(port: int = 9464, host: str = "127.0.0.1") -> int:
    """Serve this process's Prometheus metrics (prometheus_client's default registry: the vector envs
    made with `metrics=True`, and whatever the trainer registered) at `http://host:port/metrics`.

    Returns the port (pass 0 for a free one). Serving the same port twice is a no-op; the server runs
    in a daemon thread for the life of the process.
    """
    from prometheus_client import start_http_server

    with _servers_lock:
        if port and port in _servers:
            return port
        server, _thread = start_http_server(port, addr=host)
        bound = int(server.server_address[1])
        _servers[bound] = server
        return bound
