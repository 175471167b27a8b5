"""A real multi-node Ray cluster on this machine: a head and worker nodes, each its own `ray start`.

Every node is a `ray start --block` process in its own session (process group), so the cluster can
be stopped without touching any other Ray on the machine (`ray stop` would stop them all), and one
node can be lost for real: its raylet SIGKILLed, or its whole group. Each node gets a custom
resource named after it (`node_a: 1`), so a test can place an actor on a node and check where
actors landed. All nodes bind 127.0.0.1 and use the head's temp dir (under /tmp, short: unix socket
paths must stay under 108 bytes).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

from tests.support.paths import PYTHON, short_tmp
from tests.support.server import free_ports

RAY = os.path.join(os.path.dirname(PYTHON), "ray")
START_TIMEOUT = 120.0
RAY_ENV = {  # for every node and for the drivers of its cluster (tests/conftest.py)
    "RAY_USAGE_STATS_ENABLED": "0",
    # Without it, a ~/.ray/auth_token left by any earlier local `ray.init()` turns token auth on for
    # `ray start --head` only, and the nodes joining it are refused. The cluster binds 127.0.0.1 only.
    "RAY_AUTH_MODE": "disabled",
    # The GCS declares a silent node dead after about 3 s, not Ray's default of about 30 s.
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


@dataclass
class RayNode:
    name: str  # also its custom resource: {name: 1}
    process: subprocess.Popen[bytes]
    log: str
    num_cpus: int

    @property
    def node_id(self) -> str:
        """Its id in the GCS, as this process (a driver of the cluster) sees it."""
        import ray

        for n in ray.nodes():
            if n["Alive"] and n["Resources"].get(self.name):
                return str(n["NodeID"])
        raise RuntimeError(f"ray node {self.name} is not alive in the cluster")

    @property
    def pgid(self) -> int:
        return self.process.pid  # started with start_new_session: the group is the `ray start` process

    def pids(self) -> set[int]:
        """The node's processes: its `ray start` group (raylet, agents) and the workers under its raylet."""
        parents = _parents_and_groups()  # one read of /proc: pid -> (ppid, pgid)
        group = {pid for pid, (_, pgid) in parents.items() if pgid == self.pgid}
        return group | {pid for pid, (ppid, _) in parents.items() if ppid in group}

    def raylet_pid(self) -> int:
        for pid in self.pids():
            program = _cmdline(pid).split(b"\0")[0]
            if program.startswith(b"/") and b"/raylet/raylet" in program:
                return pid
        raise RuntimeError(f"ray node {self.name}: no raylet among its processes (log: {self.log})")

    def agent_pid(self, title: str) -> int:
        """A Ray agent process of this node by its title: 'DashboardAgent' or 'RuntimeEnvAgent'."""
        for pid in self.pids():
            if _cmdline(pid).startswith(f"ray::{title}".encode()):
                return pid
        raise RuntimeError(f"ray node {self.name}: no ray::{title} process")


@dataclass
class RayNodes:
    """Start with `start_head()`, add nodes with `add_node()`, stop all with `stop()`."""

    temp_dir: str = field(default_factory=lambda: short_tmp("ray-"))
    port: int = 0  # the head's GCS port, picked by start_head
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start_head(self, num_cpus: int = 2, name: str = "head") -> RayNode:
        self.port, client_port, dashboard_port = free_ports(3)  # distinct, and from the nodes' own
        head_only = [
            "--head",
            "--port",
            str(self.port),
            "--temp-dir",
            self.temp_dir,
            "--include-dashboard",
            "false",
            "--ray-client-server-port",
            str(client_port),
            "--dashboard-port",
            str(dashboard_port),
        ]
        return self._start(name, num_cpus, head_only)

    def add_node(self, name: str, num_cpus: int = 2, resources: dict[str, float] | None = None) -> RayNode:
        """A worker node with `num_cpus` CPUs and custom resources `{name: 1, **resources}`."""
        return self._start(name, num_cpus, ["--address", self.address], resources)

    def _start(self, name: str, num_cpus: int, role: list[str], resources: dict[str, float] | None = None) -> RayNode:
        log = os.path.join(self.temp_dir, f"{name}.log")
        flags = [
            "--node-manager-port",
            "--object-manager-port",
            "--dashboard-agent-listen-port",
            "--dashboard-agent-grpc-port",
            "--metrics-export-port",
            "--runtime-env-agent-port",
        ]
        ports = dict(zip(flags, free_ports(len(flags)), strict=True))
        command = [RAY, "start", "--block", *role, "--node-ip-address", "127.0.0.1", "--num-cpus", str(num_cpus)]
        command += ["--resources", json.dumps({name: 1, **(resources or {})}), "--disable-usage-stats"]
        command += [str(x) for pair in ports.items() for x in pair]
        # HOME too: the nodes never read the user's ~/.ray (a token there, or anything else of theirs)
        env = {**os.environ, **RAY_ENV, "HOME": self.temp_dir}
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        node = RayNode(name, process, log, num_cpus)
        self.nodes.append(node)
        self._wait_joined(node)
        return node

    def _wait_joined(self, node: RayNode) -> None:
        """Wait for `ray start` to say the node is up (it prints that once its raylet registered)."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                raise RuntimeError(
                    f"ray node {node.name} exited with {node.process.returncode}; log: {_tail(node.log)}"
                )
            with open(node.log, errors="replace") as fh:
                if "Ray runtime started" in fh.read():
                    return
            time.sleep(0.2)
        raise RuntimeError(f"ray node {node.name} did not start within {START_TIMEOUT:.0f} s; log: {_tail(node.log)}")

    def node(self, name: str) -> RayNode:
        return next(n for n in self.nodes if n.name == name)

    def kill(self, node: RayNode, sig: int = signal.SIGKILL) -> None:
        """Lose a whole node: every process of its group and its workers."""
        for pid in node.pids():
            _signal(pid, sig)
        node.process.wait(timeout=30)

    def remove(self, node: RayNode) -> None:
        """Lose `node` (if it still runs) and forget it: `nodes` lists the live cluster again."""
        self.kill(node)
        for pid in node.pids():  # workers that outlived their raylet
            _signal(pid, signal.SIGKILL)
        self.nodes.remove(node)

    def stop(self) -> None:
        """Stop every node this object started (workers first), then remove the temp dir."""
        for node in reversed(self.nodes):
            if node.process.poll() is None:
                _signal(-node.pgid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for node in reversed(self.nodes):
            try:
                node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for node in self.nodes:  # what a drain left behind (gcs, raylet, agents, idle workers)
            for pid in node.pids():
                _signal(pid, signal.SIGKILL)
            _signal(-node.pgid, signal.SIGKILL)
        self.nodes.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def live_pids(self) -> set[int]:
        return {pid for node in self.nodes for pid in node.pids()}


def _parents_and_groups() -> dict[int, tuple[int, int]]:
    """Every live process's (parent pid, process group), from /proc/<pid>/stat (the fields after the
    command name, which may hold spaces and parentheses)."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # exited meanwhile
            found[int(name)] = (int(fields[1]), int(fields[2]))
    return found


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return "(no log)"
