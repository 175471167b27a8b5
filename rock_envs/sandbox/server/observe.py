"""``GET /metrics`` and what only the server knows: request round trips, file bytes, the /workers relay.

The manager's own numbers (sandboxes, creates, pools, model calls, cgroups) are in
:mod:`..metrics`; this adds, to the same registry:

- ``rock_envs_http_request_seconds{route, method}``: every request's round trip by its route
  template (``/sandboxes/{sid}/commands`` is exec, ``/sandboxes/{sid}/sessions`` a session, ...);
  unmatched paths count as ``route="unmatched"``, so the label set stays the server's route list.
- ``rock_envs_file_bytes_total{direction}``: bytes uploaded to and downloaded from sandboxes.
- ``rock_envs_limit_refusals_total{cap}``: 429s, by the cap that refused (fed by the error handler).
- ``rock_envs_remote_workers``, ``rock_envs_remote_envs``, ``rock_envs_relay_frames_total{direction}``,
  ``rock_envs_relay_bytes_total{direction}``, ``rock_envs_remote_worker_restarts_total``: env
  workers behind ``/workers``, the envs sandboxes declare, the frames and bytes routed between
  clients and workers, and workers opened again in their sandbox.

``/metrics`` needs the token like every other route unless the server was started with
``--metrics-public`` (allowed on a loopback address only).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import AuthenticationError
from ..metrics import SandboxMetrics

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
FILE_ROUTES = ("/files/content", "/files/tar", "/upload", "/download", "/read_file", "/write_file")

router = APIRouter()
OPENED_CAP = 4096


@dataclass
class RelayCounts:
    """Plain counters the /workers relay bumps per frame (cheaper than a labelled Counter), read at scrape."""

    channels: int = 0
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    open: dict[int, Any] = field(default_factory=dict)
    """The channels open now, by ``id()`` (each counts its own frames), for the dashboard."""
    serial: int = 0
    """Workers opened since the server started (each channel's ``key`` is ``w<serial>``)."""
    opened: dict[str, int] = field(default_factory=dict)
    """Workers opened in each sandbox: past the first, each is a restart (a worker that died or
    lost its connection, opened again in its sandbox). The last ``OPENED_CAP`` sandboxes are kept."""
    restarts: int = 0

    def count_open(self, sandbox_id: str) -> str:
        """A worker opens in ``sandbox_id``: count it, and return its channel's key."""
        self.serial += 1
        seen = self.opened.pop(sandbox_id, 0)  # re-inserted last: the dict stays in order of use
        self.opened[sandbox_id] = seen + 1
        self.restarts += seen > 0
        if len(self.opened) > OPENED_CAP:
            del self.opened[next(iter(self.opened))]
        return f"w{self.serial}"

    def restarts_of(self, sandbox_id: str) -> int:
        return max(0, self.opened.get(sandbox_id, 1) - 1)


class CommandHistory:
    """The last few commands run over ``POST /sandboxes/{sid}/commands`` in each sandbox, with exit codes."""

    def __init__(self, keep: int = 20):
        self.keep = keep
        self.by_sandbox: dict[str, deque[dict[str, Any]]] = {}

    def add(self, sandbox_id: str, cmd: str, exit_code: int | None, timed_out: bool, seconds: float) -> None:
        if len(self.by_sandbox) > 4096:  # forget sandboxes long gone
            for sid in list(self.by_sandbox)[:1024]:
                del self.by_sandbox[sid]
        book = self.by_sandbox.setdefault(sandbox_id, deque(maxlen=self.keep))
        book.append(
            {"cmd": cmd[:500], "exit_code": exit_code, "timed_out": timed_out, "seconds": seconds, "at": time.time()}
        )

    def recent(self, sandbox_id: str) -> list[dict[str, Any]]:
        return list(self.by_sandbox.get(sandbox_id, ()))[::-1]


class ServerCollector(Collector):
    def __init__(self, app: Any):
        self.state = app.state

    def collect(self) -> Iterable[Metric]:
        relay: RelayCounts = self.state.relay
        workers = GaugeMetricFamily("rock_envs_remote_workers", "Env workers open behind /workers.")
        workers.add_metric([], relay.channels)
        envs = GaugeMetricFamily("rock_envs_remote_envs", "Envs the server's sandboxes declare (label `envs`).")
        envs.add_metric([], self.state.quota.usage()[1])
        frames = CounterMetricFamily(
            "rock_envs_relay_frames",
            "Frames routed by /workers: to_worker from clients, to_client from workers.",
            labels=["direction"],
        )
        size = CounterMetricFamily("rock_envs_relay_bytes", "Frame bytes routed by /workers.", labels=["direction"])
        frames.add_metric(["to_worker"], relay.frames_in)
        frames.add_metric(["to_client"], relay.frames_out)
        size.add_metric(["to_worker"], relay.bytes_in)
        size.add_metric(["to_client"], relay.bytes_out)
        restarts = CounterMetricFamily(
            "rock_envs_remote_worker_restarts",
            "Env workers opened again in a sandbox that had one (the worker died or lost its connection).",
        )
        restarts.add_metric([], relay.restarts)
        return [workers, envs, frames, size, restarts]


class ServerMetrics:
    """The server's additions to its manager's registry (see the module docstring)."""

    def __init__(self, app: Any, metrics: SandboxMetrics):
        self.registry = metrics.registry
        self.refusals = metrics.refusals
        self.requests = Histogram(
            "rock_envs_http_request_seconds",
            "Seconds from a request's arrival to its last response byte, by route template and method.",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.file_bytes = Counter(
            "rock_envs_file_bytes",
            "Bytes uploaded into sandboxes (upload) and downloaded from them (download).",
            ["direction"],
            registry=self.registry,
        )
        app.state.relay = RelayCounts()
        app.state.history = CommandHistory()
        metrics.add(ServerCollector(app))


class RequestMetrics:
    """ASGI middleware: each HTTP request's round trip by route template, and file bytes both ways."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began = time.perf_counter()
        sent = received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route, scope["method"]).observe(time.perf_counter() - began)
            if route.endswith(FILE_ROUTES):
                if scope["method"] == "GET" or route.endswith(("/download", "/read_file")):
                    self.metrics.file_bytes.labels("download").inc(sent)
                else:
                    self.metrics.file_bytes.labels("upload").inc(received)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    state = request.app.state
    if not state.metrics_public and not state.check_token(request.headers.get("authorization", "")):
        raise AuthenticationError(
            "`GET /metrics`: missing or wrong bearer token; give Prometheus the token "
            "(`authorization: {credentials: <token>}` in its scrape config), or start the server "
            "with `--metrics-public` on a loopback address."
        )
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
