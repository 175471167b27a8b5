"""The ray backend: EnvWorkers as Ray actors, each hosting a block of envs, on any Ray cluster.

    make_vec("game:Sokoban-v0-easy", 4096, backend="ray", num_workers=16,
             worker_resources={"num_cpus": 1}, ray_address="auto", placement="spread")

Where the cluster comes from (`ray_address`):
- Ray already initialised in this process: the group uses it and never shuts it down;
- an address ("auto", "ray://...", "host:port", or the `RAY_ADDRESS` variable): the group connects as
  a driver, and on close disconnects (the cluster keeps running);
- nothing: the group starts a local cluster (`ray.init(address="local")`, no dashboard, sized to fit
  the workers) shared by every group of this process, and shuts it down when the last one closes.

Where the actors go (`placement`): "spread" (default) schedules each actor with Ray's SPREAD
strategy; "pack", "spread_strict"/"strict_spread", "strict_pack" reserve one placement-group bundle
per worker (`worker_resources`) with that strategy, removed on close; a `PlacementGroup` the caller
made puts worker `w` in bundle `w % bundle_count`.

Each actor runs one `EnvWorker` and serves it over its own data channel
(`rock_envs.backends.ray_channel`): a TCP socket the actor opens on its node's IP, authenticated by
a secret the driver made for that actor, over which the driver speaks the worker protocol exactly
as the subprocess backend does over its unix sockets. Ray places the actors, starts them and kills
them; a vector step never goes through Ray's task machinery (one actor call costs about 1 ms
here; `python -m benchmarks.ray` compares the two backends). The driver must reach the nodes' IPs, as any Ray driver
must (a `ray://` client behind a NAT cannot).

Faults:
- An actor, its worker process or its whole node lost (raylet killed, node's processes killed, a
  Ray agent killed, which takes its raylet with it; an actor ends with its raylet, its parent,
  since Ray's worker processes outlive it and would go on answering): the channel breaks at once (end of stream, or
  TCP keepalive within about 11 s when a machine vanishes silently), which is `WorkerGone` without
  waiting for Ray's GCS to notice; the engine calls `restart`, which starts a fresh actor wherever
  Ray has room (a surviving node, or a node added since) and its envs are rebuilt, re-seeded and
  flagged `worker_restarted`. A fresh actor that cannot be placed within `start_timeout` raises
  `WorkerDiedError` naming the resources asked for and those free.
- The whole cluster gone (its GCS refuses connections): the next call that needs Ray raises
  `BackendUnavailableError` at once, and every later one the same; `close()` returns without
  asking Ray for anything.

Ray's usage reporting is turned off (`RAY_USAGE_STATS_ENABLED=0`) before Ray starts. Remote clusters
need rock-envs (and the env's package) installed on their nodes, or a `runtime_env` passed through
`ray.init` by the caller.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from rock_envs.backends.base import WorkerGone
from rock_envs.backends.options import PLACEMENTS, RayOptions
from rock_envs.backends.ray_channel import ChannelListener, connect, new_secret
from rock_envs.backends.sockets import SocketWorkers
from rock_envs.core.cores import usable_cores
from rock_envs.core.errors import BackendUnavailableError, EnvArgumentError, WorkerDiedError
from rock_envs.worker.loop import exit_with_parent, freeze_heap, serve
from rock_envs.worker.protocol import Reply

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402  (after the usage-stats switch)
from ray.exceptions import GetTimeoutError, RayActorError, RayError  # noqa: E402
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group  # noqa: E402
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy  # noqa: E402

STRATEGIES = {  # a placement option -> the strategy of the placement group made for it (None: none)
    "spread": None,
    "pack": "PACK",
    "strict_pack": "STRICT_PACK",
    "strict_spread": "STRICT_SPREAD",
    "spread_strict": "STRICT_SPREAD",
}
assert tuple(STRATEGIES) == PLACEMENTS  # one list of placements: the option checks it, this maps it
KILL_CONFIRM_TIMEOUT = 60.0
GCS_PROBE_TIMEOUT = 2.0
PARENT_WATCH_INTERVAL = 0.2
RELAUNCH_PAUSE = 0.5  # before placing again an actor whose node died under it: the GCS is catching up


class EnvWorkerActor:
    """The Ray actor: opens its data channel when made, then serves one EnvWorker over it in a thread.

    `accept_timeout`: how long it waits for its driver to connect before it stops listening (the
    driver kills an actor it could not reach).
    """

    def __init__(self, secret: bytes, accept_timeout: float) -> None:
        # Ray's worker processes outlive a SIGKILLed raylet (their parent) and keep answering on their
        # channel, on a node Ray has declared dead; ending with it breaks the channel, so the driver
        # rebuilds the envs where Ray has room.
        exit_with_parent(every=PARENT_WATCH_INTERVAL)
        freeze_heap()  # the actor's process is ours alone
        self.listener = ChannelListener(secret, ray.util.get_node_ip_address())
        self.thread = threading.Thread(
            target=self._serve, args=(accept_timeout,), name="rock-envs-channel", daemon=True
        )
        self.thread.start()

    def address(self) -> tuple[str, int]:
        return self.listener.address

    def where(self) -> dict[str, Any]:
        context = ray.get_runtime_context()
        return {
            "pid": os.getpid(),
            "node_id": context.get_node_id(),
            "actor_id": context.get_actor_id(),
            "address": self.listener.address,
        }

    def _serve(self, accept_timeout: float) -> None:
        sock = self.listener.accept(accept_timeout)
        if sock is None:
            return
        conn = Connection(sock.detach())
        try:
            serve(conn)
        finally:
            conn.close()  # the driver sees end-of-stream once the worker has closed its envs


_RemoteActor = ray.remote(max_restarts=0, max_task_retries=0)(EnvWorkerActor)


class _Cluster:
    """Who started Ray in this process: groups using a cluster they started share it, counted."""

    lock = threading.Lock()
    users = 0  # groups using the Ray connection this module opened
    opened = False

    @classmethod
    def acquire(cls, address: str | None, num_cpus: float) -> bool:
        """Make sure Ray is initialised; True if this module owns the connection (and must release it)."""
        with cls.lock:
            if ray.is_initialized():
                if cls.opened:
                    cls.users += 1
                return cls.opened
            address = address or os.environ.get("RAY_ADDRESS") or None
            if address is None:
                ray.init(
                    address="local",
                    num_cpus=max(1, int(-(-num_cpus // 1))),
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            cls.opened, cls.users = True, 1
            return True

    @classmethod
    def release(cls, cluster_alive: bool = True) -> None:
        with cls.lock:
            cls.users -= 1
            if cls.users <= 0 and cls.opened:
                cls.opened, cls.users = False, 0
                if cluster_alive:
                    ray.shutdown()  # stops a local cluster it started; only disconnects from a remote one


def gcs_address() -> str:
    """The GCS this driver is connected to, as host:port."""
    return str(ray.get_runtime_context().gcs_address)


def gcs_reachable(address: str, timeout: float = GCS_PROBE_TIMEOUT) -> bool:
    """Whether the GCS at `address` accepts a TCP connection: a probe that never waits on Ray itself
    (a Ray call to a GCS that is gone blocks until Ray gives up, and may end the process)."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError:
        return False
    return True


class RayGroup(SocketWorkers):
    name = "ray"

    def __init__(self, num_workers: int, options: RayOptions | None = None):
        super().__init__(num_workers)
        self.options = options or RayOptions()
        self.worker_resources = self.options.resources
        self.ray_address = self.options.ray_address
        self.placement = self.options.placement
        self.start_timeout = self.options.start_timeout
        self.owns_ray = False
        self._pg: PlacementGroup | None = None
        self._own_pg = False
        self._gcs = ""
        self._actors: list[Any] = [None] * num_workers
        self._addresses: list[tuple[str, int] | None] = [None] * num_workers
        self._cluster_gone: BackendUnavailableError | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        needed = self.num_workers * float(self.worker_resources.get("num_cpus", 1))
        self.owns_ray = _Cluster.acquire(self.ray_address, max(needed, usable_cores()))
        try:
            self._gcs = gcs_address()
            self._check_fits(needed)
            self._place()
            self._launch(list(range(self.num_workers)), "make_vec(backend='ray')")
        except BaseException:
            self.close()
            raise

    def _check_fits(self, needed: float) -> None:
        total = ray.cluster_resources().get("CPU", 0.0)
        if needed > total:
            raise EnvArgumentError(
                f"`make_vec(backend='ray')`: {self.num_workers} workers of {self.worker_resources.get('num_cpus', 1)} "
                f"CPU need {needed:g} CPUs, the Ray cluster has {total:g}; pass fewer `num_workers` or a fractional "
                "`worker_resources={'num_cpus': 0.5}`."
            )

    def _place(self) -> None:
        if isinstance(self.placement, PlacementGroup):
            self._pg = self.placement
            return
        strategy = STRATEGIES[self.placement]
        if strategy is None:
            return
        bundle = {"CPU": float(self.worker_resources.get("num_cpus", 1))}
        if self.worker_resources.get("num_gpus"):
            bundle["GPU"] = float(self.worker_resources["num_gpus"])
        if self.worker_resources.get("memory"):
            bundle["memory"] = float(self.worker_resources["memory"])
        bundle.update(self.worker_resources.get("resources") or {})
        self._pg, self._own_pg = (
            placement_group([dict(bundle) for _ in range(self.num_workers)], strategy=strategy),
            True,
        )
        ready, _ = ray.wait([self._pg.ready()], timeout=self.start_timeout)
        if not ready:
            raise WorkerDiedError(
                f"`make_vec(backend='ray', placement={self.placement!r})`: the placement group of "
                f"{self.num_workers} bundles of {bundle} was not ready within start_timeout={self.start_timeout:g} s "
                f"(free now: {ray.available_resources()}); ask for less, add nodes, or raise `start_timeout`."
            )

    def _actor_options(self, w: int) -> dict[str, Any]:
        options: dict[str, Any] = {k: v for k, v in self.worker_resources.items() if v is not None}
        if self._pg is not None:
            index = w % max(1, self._pg.bundle_count)
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                self._pg, placement_group_bundle_index=index
            )
        else:
            options["scheduling_strategy"] = "SPREAD"
        return options

    def _launch(self, workers: list[int], call: str) -> None:
        """Start a fresh actor for each of `workers` (all at once) and connect to its channel.

        An actor Ray placed on a node that died before it ran (a lost node the GCS has yet to
        declare dead) is placed again, until `start_timeout`.
        """
        deadline = time.monotonic() + self.start_timeout
        todo = list(workers)
        while todo:
            self._check_cluster()
            secrets: dict[Any, tuple[int, bytes]] = {}
            for w in todo:
                secret = new_secret()
                self._actors[w] = _RemoteActor.options(**self._actor_options(w)).remote(secret, self.start_timeout)
                secrets[self._actors[w].address.remote()] = (w, secret)
            left = max(0.0, deadline - time.monotonic())
            ready, late = ray.wait(list(secrets), num_returns=len(secrets), timeout=left)
            if late:
                self._check_cluster()
                raise WorkerDiedError(
                    f"`{call}`: the Ray actors of workers {sorted(secrets[r][0] for r in late)} did not start "
                    f"within start_timeout={self.start_timeout:g} s; each asks for {self.worker_resources}, the "
                    f"cluster has {ray.available_resources()} free. Add nodes, ask for less `worker_resources`, "
                    "or raise `start_timeout`."
                )
            todo = [w for w in (self._connect(ref, *secrets[ref], call, deadline) for ref in ready) if w is not None]
            if todo:
                time.sleep(RELAUNCH_PAUSE)

    def _connect(self, ref: Any, w: int, secret: bytes, call: str, deadline: float) -> int | None:
        """Connect to the channel of worker `w`'s new actor (`ref`: its address); `w` if it must be placed again."""
        try:
            address = tuple(ray.get(ref))
        except RayActorError as e:
            if not e.actor_init_failed and time.monotonic() < deadline:
                return w  # it never ran: its node died under it
            raise WorkerDiedError(
                f"`{call}`: the Ray actor of worker {w} failed to start ({type(e).__name__}: {_first_line(e)}); "
                "check that rock-envs and the env's packages are installed on every node."
            ) from e
        try:
            sock = connect(address, secret, timeout=max(1.0, deadline - time.monotonic()))
        except OSError as e:
            raise WorkerDiedError(
                f"`{call}`: could not open the data channel of worker {w}'s actor at {address[0]}:{address[1]} "
                f"({e}); the driver must reach every node's IP (a firewall, or a `ray://` client behind NAT?)."
            ) from e
        self._addresses[w] = address
        self._attach(w, sock)
        return None

    def _check_cluster(self) -> None:
        """Raise at once if the cluster is gone (its GCS refuses connections): Ray calls would hang."""
        if self._cluster_gone is None and self._gcs and not gcs_reachable(self._gcs):
            self._cluster_gone = BackendUnavailableError(
                f"ray backend: the Ray cluster is gone (its GCS at {self._gcs} refuses connections), so the "
                "workers it lost cannot be started again; start the cluster again and make a new vector env "
                "(`venv.close()` is safe)."
            )
        if self._cluster_gone is not None:
            raise self._cluster_gone

    def restart(self, w: int) -> None:
        self._drop(w)  # our end of the old channel: a live old actor sees end-of-stream
        self._check_cluster()
        if (old := self._actors[w]) is not None:
            _kill(old)
        self._launch([w], f"ray backend: restarting worker {w}")

    def kill(self, w: int) -> None:
        """Kill worker `w`'s actor and return once Ray reports it dead.

        `ray.kill` only asks the GCS; a request sent right after it can still reach the live actor
        and be answered, so a test's next step would not see the death it means to cause.
        """
        actor = self._actors[w]
        ray.kill(actor, no_restart=True)
        deadline = time.monotonic() + KILL_CONFIRM_TIMEOUT
        while time.monotonic() < deadline:
            try:
                ray.get(actor.where.remote(), timeout=5)
            except RayActorError:
                self._wait_channel_closed(w, max(0.0, deadline - time.monotonic()))
                return
            except GetTimeoutError:
                continue
            time.sleep(0.05)
        raise RuntimeError(
            f"ray backend: worker {w}'s actor was still answering {KILL_CONFIRM_TIMEOUT:.0f} s after ray.kill"
        )

    def _wait_channel_closed(self, w: int, timeout: float) -> None:
        """Wait until the actor's end of worker `w`'s channel is closed (its process is gone), reading nothing:
        Ray reports an actor dead while its process may still answer a request sent at once."""
        conn = self._conns[w]
        if conn is None:
            return
        poller = select.poll()
        poller.register(conn.fileno(), getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR)
        poller.poll(int(timeout * 1000))

    def describe(self, w: int) -> dict[str, Any]:
        return dict(ray.get(self._actors[w].where.remote(), timeout=60))

    def _gone_reason(self, w: int) -> str:
        host, port = self._addresses[w] or ("?", 0)
        return (
            f"the data channel of worker {w}'s Ray actor ({host}:{port}) closed: the actor, its worker "
            "process or its node died"
        )

    def wait(self, timeout: float | None) -> list[tuple[int, Reply | WorkerGone]]:
        if self._cluster_gone is not None:
            raise self._cluster_gone
        return super().wait(timeout)

    def _close(self) -> None:
        alive = False
        try:
            self._close_workers()  # Close over every channel, all at once; then our ends are closed
            alive = self._cluster_gone is None and ray.is_initialized() and gcs_reachable(self._gcs or gcs_address())
            if alive:
                for actor in self._actors:
                    if actor is not None:
                        _kill(actor)
                if self._own_pg and self._pg is not None:
                    remove_placement_group(self._pg)
        finally:
            self._actors = [None] * self.num_workers
            self._pg = None
            if self.owns_ray:
                self.owns_ray = False
                _Cluster.release(cluster_alive=alive)


def _kill(actor: Any) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except (RayError, ValueError):  # already dead, or Ray shut down under us
        pass


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else "no detail"


__all__ = ["EnvWorkerActor", "RayGroup"]
