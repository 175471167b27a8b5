"""Prometheus metrics of the sandbox layer, read from what the manager and its ModelService hub know.

Histograms and counters are fed as things happen (a create's phases, an agent's death, a model
call's answer); gauges are read from the manager when Prometheus scrapes (sandboxes by state,
pools, waiting model calls, per-sandbox cgroup readings). Each manager owns its registry (no
module globals), so two managers in one process never mix their numbers.

Label cardinality is bounded: histograms and counters carry phases, pool hit or miss, call
statuses, caps and route templates, never a sandbox id. The per-sandbox gauges
(``rock_envs_sandbox_cpu_seconds``, ``_memory_bytes``, ``_pids``) carry a ``sandbox`` label for at
most :data:`PER_SANDBOX_CAP` sandboxes, the oldest first; ``rock_envs_sandbox_readings_capped``
says how many were left out.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .manager import Entry, SandboxManager

PER_SANDBOX_CAP = 64
"""Sandboxes whose CPU, memory and pids are exported, each as its own labelled series."""
CREATE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CALL_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
STATES = ("starting", "running", "pooled", "dead")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class SandboxMetrics:
    """The registry of one manager: what it feeds as things happen, and a collector for the rest."""

    def __init__(self, manager: SandboxManager):
        self.registry = CollectorRegistry(auto_describe=True)
        self.create_phase = Histogram(
            "rock_envs_sandbox_create_phase_seconds",
            "Seconds a sandbox create spent in each phase: queue (waiting for a start slot), "
            "start (the runtime starting it), agent_ready (its agent's first answer).",
            ["phase"],
            buckets=CREATE_BUCKETS,
            registry=self.registry,
        )
        self.create = Histogram(
            "rock_envs_sandbox_create_seconds",
            "Seconds from a create request to a running sandbox; pool=hit took a ready pool member, "
            "miss started one (from a pool or not).",
            ["pool"],
            buckets=CREATE_BUCKETS,
            registry=self.registry,
        )
        self.agent_deaths = Counter(
            "rock_envs_sandbox_agent_deaths", "Sandboxes whose agent was found gone.", registry=self.registry
        )
        self.refusals = Counter(
            "rock_envs_limit_refusals",
            "Requests refused with 429, by the cap that refused them.",
            ["cap"],
            registry=self.registry,
        )
        self.model_call = Histogram(
            "rock_envs_model_call_seconds",
            "Seconds from a sandbox's model call to its answer (the first byte, for a stream), by how it ended.",
            ["status"],
            buckets=CALL_BUCKETS,
            registry=self.registry,
        )
        self.model_errors = Counter(
            "rock_envs_model_call_errors",
            "Model calls that ended in an error, a timeout or a hang-up, by status.",
            ["status"],
            registry=self.registry,
        )
        self.registry.register(_ManagerCollector(manager))

    def add(self, collector: Collector) -> None:
        """Another collector read at every scrape (the server adds its relay and caps)."""
        self.registry.register(collector)

    def phase(self, name: str, since: float) -> float:
        """Observe ``name`` as the time since ``since`` (a ``time.monotonic()``); returns now."""
        now = time.monotonic()
        self.create_phase.labels(name).observe(now - since)
        return now

    def model_call_done(self, status: str, seconds: float) -> None:
        self.model_call.labels(status).observe(seconds)
        if status in ("error", "timeout", "cancelled"):
            self.model_errors.labels(status).inc()


class _ManagerCollector(Collector):
    """Gauges and counters read from the manager at scrape time."""

    def __init__(self, manager: SandboxManager):
        self.manager = manager

    def collect(self) -> Iterable[Metric]:
        manager = self.manager
        entries = list(manager.sandboxes.values())
        by_state = GaugeMetricFamily(
            "rock_envs_sandboxes", "Sandboxes this manager holds, by state and runtime.", labels=["state", "runtime"]
        )
        counts: dict[tuple[str, str], int] = {}
        for entry in entries:
            key = (entry.status, entry.spec.runtime)
            counts[key] = counts.get(key, 0) + 1
        for runtime in sorted({"process", *(r for _, r in counts)}):
            for state in STATES:
                by_state.add_metric([state, runtime], counts.get((state, runtime), 0))
        yield by_state
        yield _gauge("rock_envs_sandbox_creates_waiting", "Creates queued behind max_starting.", manager._queued)
        yield _gauge("rock_envs_sandbox_max_starting", "Sandboxes started at once at most.", manager.max_starting)
        for name, help_text in (
            ("ttl_reaped", "Sandboxes removed after idling past their TTL."),
            ("lease_expired", "Sandboxes removed when their lease lapsed."),
            ("swept", "Sandboxes an earlier manager on this runtime dir left behind, removed."),
        ):
            counter = CounterMetricFamily(f"rock_envs_sandbox_{name}", help_text)
            counter.add_metric([], manager.counts.get(name, 0))
            yield counter
        yield from _pools(manager)
        hub = manager.models
        waiting = sum(box.waiting for box in list(hub.boxes.values()))
        yield _gauge(
            "rock_envs_model_calls_pending", "Model calls waiting for an answer (trainer or upstream).", waiting
        )
        yield _gauge(
            "rock_envs_model_calls_unclaimed",
            "Trainer-mode model calls no trainer has taken yet.",
            sum(1 for p in list(hub.pending.values()) if not p.claimed),
        )
        yield from _per_sandbox(entries)


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, help_text)
    gauge.add_metric([], value)
    return gauge


def _pools(manager: SandboxManager) -> Iterator[Metric]:
    members = GaugeMetricFamily(
        "rock_envs_pool_members", "Warm pool members, by pool and state.", labels=["pool", "state"]
    )
    claims = CounterMetricFamily(
        "rock_envs_pool_claims",
        "Claims on a warm pool; hit took a ready member, miss started one.",
        labels=["pool", "result"],
    )
    for pool in list(manager.pools.values()):
        stats = pool.stats()
        for state, value in (("ready", stats.ready), ("starting", stats.starting), ("claimed", stats.claimed)):
            members.add_metric([pool.name, state], value)
        claims.add_metric([pool.name, "hit"], stats.claims)
        claims.add_metric([pool.name, "miss"], stats.misses)
    yield members
    yield claims


def _per_sandbox(entries: list[Entry]) -> Iterator[Metric]:
    cpu = GaugeMetricFamily(
        "rock_envs_sandbox_cpu_seconds", "CPU seconds used by a sandbox's processes.", labels=["sandbox"]
    )
    memory = GaugeMetricFamily("rock_envs_sandbox_memory_bytes", "Memory a sandbox's cgroup uses.", labels=["sandbox"])
    pids = GaugeMetricFamily("rock_envs_sandbox_pids", "Processes in a sandbox.", labels=["sandbox"])
    read = [e for e in entries if e.placement is not None and e.status in ("running", "pooled")]
    read.sort(key=lambda e: e.created_at)
    for entry in read[:PER_SANDBOX_CAP]:
        assert entry.placement is not None  # filtered above
        usage = cgroup_usage(entry.placement.extra)
        if "cpu" in usage:
            cpu.add_metric([entry.id], usage["cpu"])
        if "memory" in usage:
            memory.add_metric([entry.id], usage["memory"])
        if "pids" in usage:
            pids.add_metric([entry.id], usage["pids"])
    yield cpu
    yield memory
    yield pids
    yield _gauge(
        "rock_envs_sandbox_readings_capped",
        f"Running sandboxes left out of the per-sandbox gauges (at most {PER_SANDBOX_CAP} are exported).",
        max(0, len(read) - PER_SANDBOX_CAP),
    )


def cgroup_usage(extra: dict[str, Any]) -> dict[str, float]:
    """CPU seconds, memory bytes and pids of a process-runtime sandbox, from its cgroups (v2 or v1).

    Where the cgroup keeps no CPU count (v1 without cpuacct), the CPU seconds of its live
    processes and of the children they reaped are summed from ``/proc``. A container's are read
    from the engine's cgroups on this host (:func:`container_usage`); empty where none is found.
    """
    if extra.get("container") and not extra.get("cgroups"):
        return container_usage(str(extra["container"]))
    out: dict[str, float] = {}
    procs: set[int] = set()
    for controller, path in extra.get("cgroups") or []:
        if controller == "v2":
            out["pids"] = _number(os.path.join(path, "pids.current"))
            out["memory"] = _number(os.path.join(path, "memory.current"))
            for line in _text(os.path.join(path, "cpu.stat")).splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec" and value.strip().isdigit():
                    out["cpu"] = int(value) / 1e6
        elif controller == "pids":
            out["pids"] = _number(os.path.join(path, "pids.current"))
            procs.update(int(p) for p in _text(os.path.join(path, "cgroup.procs")).split() if p.isdigit())
        elif controller == "memory":
            out["memory"] = _number(os.path.join(path, "memory.usage_in_bytes"))
    if "cpu" not in out and procs:
        out["cpu"] = sum(_proc_cpu(pid) for pid in procs)
    return out


CONTAINER_GROUPS = ("{root}/{ctl}/docker/{cid}", "{root}/system.slice/docker-{cid}.scope", "{root}/docker/{cid}")


def container_usage(cid: str, root: str = "/sys/fs/cgroup") -> dict[str, float]:
    """A local Docker container's CPU seconds, memory and pids, from the cgroups its engine made
    (cgroupfs v1, or v2 under systemd or cgroupfs); empty for an engine on another host."""
    v1 = {ctl: CONTAINER_GROUPS[0].format(root=root, ctl=ctl, cid=cid) for ctl in ("memory", "pids", "cpuacct")}
    if os.path.isdir(v1["memory"]):
        out = {
            "memory": _number(os.path.join(v1["memory"], "memory.usage_in_bytes")),
            "pids": _number(os.path.join(v1["pids"], "pids.current")),
        }
        usage = _text(os.path.join(v1["cpuacct"], "cpuacct.usage")).strip()
        if usage.isdigit():
            out["cpu"] = int(usage) / 1e9
        return out
    for pattern in CONTAINER_GROUPS[1:]:
        path = pattern.format(root=root, cid=cid)
        if os.path.isdir(path):
            return cgroup_usage({"cgroups": [["v2", path]]})
    return {}


def _text(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def _number(path: str) -> float:
    text = _text(path).strip()
    return float(text) if text.isdigit() else 0.0


def _proc_cpu(pid: int) -> float:
    fields = _text(f"/proc/{pid}/stat").rpartition(")")[2].split()
    if len(fields) < 15:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / TICKS  # utime, stime, and those of its waited-for children
