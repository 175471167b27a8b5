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

Each actor runs one `EnvWorker`; `handle(request)` returns the list of its replies, so a vector step
is one actor call per worker. Requests to one actor run in order (Ray orders calls from one caller
to one actor); `wait` hands a worker's replies out in that order. A dead actor (killed, its node
lost) surfaces as `WorkerGone` on its next reply; `restart` makes a fresh actor.

Ray's usage reporting is turned off (`RAY_USAGE_STATS_ENABLED=0`) before Ray starts. Remote clusters
need rock-envs (and the env's package) installed on their nodes, or a `runtime_env` passed through
`ray.init` by the caller.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Any

from rock_envs.backends.base import WorkerGone, WorkerGroup
from rock_envs.backends.options import PLACEMENTS, RayOptions
from rock_envs.core.cores import usable_cores
from rock_envs.core.errors import EnvArgumentError
from rock_envs.worker.env_worker import EnvWorker
from rock_envs.worker.protocol import Close, Failure, Reply, Request

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402  (after the usage-stats switch)
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError  # noqa: E402
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
CLOSE_TIMEOUT = 5.0
KILL_CONFIRM_TIMEOUT = 60.0


class EnvWorkerActor:
    """The Ray actor: one EnvWorker, reached by `handle(request) -> [reply, ...]`."""

    def __init__(self) -> None:
        self.worker = EnvWorker()

    def handle(self, request: Request) -> list[Reply]:
        return list(self.worker.handle(request))

    def where(self) -> dict[str, Any]:
        context = ray.get_runtime_context()
        return {"pid": os.getpid(), "node_id": context.get_node_id(), "actor_id": context.get_actor_id()}


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
    def release(cls) -> None:
        with cls.lock:
            cls.users -= 1
            if cls.users <= 0 and cls.opened:
                cls.opened, cls.users = False, 0
                ray.shutdown()  # stops a local cluster it started; only disconnects from a remote one


class RayGroup(WorkerGroup):
    name = "ray"

    def __init__(self, num_workers: int, options: RayOptions | None = None):
        super().__init__(num_workers)
        self.options = options or RayOptions()
        self.worker_resources = self.options.resources
        self.ray_address = self.options.ray_address
        self.placement = self.options.placement
        self.owns_ray = False
        self._pg: PlacementGroup | None = None
        self._own_pg = False
        self._actors: list[Any] = [None] * num_workers
        self._refs: list[deque[Any]] = [deque() for _ in range(num_workers)]

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        needed = self.num_workers * float(self.worker_resources.get("num_cpus", 1))
        self.owns_ray = _Cluster.acquire(self.ray_address, max(needed, usable_cores()))
        try:
            self._check_fits(needed)
            self._place()
            for w in range(self.num_workers):
                self._actors[w] = self._new_actor(w)
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
        ray.get(self._pg.ready())

    def _new_actor(self, w: int) -> Any:
        options: dict[str, Any] = {k: v for k, v in self.worker_resources.items() if v is not None}
        if self._pg is not None:
            index = w % max(1, self._pg.bundle_count)
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                self._pg, placement_group_bundle_index=index
            )
        else:
            options["scheduling_strategy"] = "SPREAD"
        return _RemoteActor.options(**options).remote()

    def restart(self, w: int) -> None:
        old = self._actors[w]
        if old is not None:
            _kill(old)
        self._refs[w].clear()
        self._gone[w] = False
        self._actors[w] = self._new_actor(w)

    def kill(self, w: int) -> None:
        """Kill worker `w`'s actor and return once Ray reports it dead.

        `ray.kill` only asks the GCS; a call sent right after it can still reach the live actor
        and be answered, so a test's next step would not see the death it means to cause.
        """
        actor = self._actors[w]
        ray.kill(actor, no_restart=True)
        deadline = time.monotonic() + KILL_CONFIRM_TIMEOUT
        while time.monotonic() < deadline:
            try:
                ray.get(actor.where.remote(), timeout=5)
            except RayActorError:
                return
            except GetTimeoutError:
                continue  # busy in a step that the kill has yet to interrupt
            time.sleep(0.05)
        raise RuntimeError(
            f"ray backend: worker {w}'s actor was still answering {KILL_CONFIRM_TIMEOUT:.0f} s after ray.kill"
        )

    def describe(self, w: int) -> dict[str, Any]:
        return ray.get(self._actors[w].where.remote(), timeout=60)

    def _close(self) -> None:
        try:
            if ray.is_initialized():
                self._stop_actors()
                if self._own_pg and self._pg is not None:
                    remove_placement_group(self._pg)
        finally:
            self._pg = None
            if self.owns_ray:
                self.owns_ray = False
                _Cluster.release()

    def _stop_actors(self) -> None:
        """Ask every live actor to close its envs (all at once), then kill them."""
        closing = [a.handle.remote(Close()) for w, a in enumerate(self._actors) if a is not None and not self._gone[w]]
        if closing:
            ray.wait(closing, num_returns=len(closing), timeout=CLOSE_TIMEOUT)
        for w, actor in enumerate(self._actors):
            if actor is not None:
                _kill(actor)
            self._actors[w] = None
            self._refs[w].clear()

    # ---- messages ----------------------------------------------------------------------------

    def send(self, w: int, request: Request) -> None:
        if self._gone[w] or self._actors[w] is None:
            return  # its death was (or will be) reported by wait(); the engine restarts it
        self._refs[w].append(self._actors[w].handle.remote(request))

    def wait(self, timeout: float | None) -> list[tuple[int, Reply | WorkerGone]]:
        heads = {queue[0]: w for w, queue in enumerate(self._refs) if queue}
        if not heads:
            return []
        outstanding = [ref for queue in self._refs for ref in queue]
        first, _ = ray.wait(list(heads), num_returns=1, timeout=timeout)
        if not first:
            return []
        ready, _ = ray.wait(outstanding, num_returns=len(outstanding), timeout=0)
        ready_set = set(ready) | set(first)
        out: list[tuple[int, Reply | WorkerGone]] = []
        for w, queue in enumerate(self._refs):
            while queue and queue[0] in ready_set:  # in order: a later reply waits for the earlier ones
                ref = queue.popleft()
                try:
                    replies = ray.get(ref)
                except RayActorError as e:
                    self._gone[w] = True
                    queue.clear()
                    out.append((w, WorkerGone(f"Ray actor of worker {w} died ({type(e).__name__}: {_first_line(e)})")))
                    break
                except RayTaskError as e:  # the actor method itself failed (EnvWorker catches env errors)
                    replies = [Failure.from_exception(e)]
                out.extend((w, reply) for reply in replies)
        return out


def _kill(actor: Any) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except (RayError, ValueError):  # already dead, or Ray shut down under us
        pass


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else "no detail"


__all__ = ["EnvWorkerActor", "RayGroup"]
