"""The options of each backend: one dataclass per backend, checked once, when it is made.

`make_vec` takes every field below as a keyword; `options_for(backend, given)` turns the keywords
a caller gave into the chosen backend's dataclass, and an option of another backend into an error
that names the backends taking it. A field's docstring is its documentation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

from rock_envs.core.cores import usable_cores
from rock_envs.core.errors import EnvArgumentError

START_METHODS = ("forkserver", "spawn", "fork")
PLACEMENTS = ("spread", "pack", "strict_pack", "strict_spread", "spread_strict")
SANDBOX_RUNTIMES = ("process", "docker")


def _positive(call: str, name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise EnvArgumentError(f"`{call}({name}=...)`: expected a positive integer, got {value!r}.")


@dataclass(frozen=True)
class BackendOptions:
    """What every backend's options share: their names are `make_vec` keywords."""

    backend: ClassVar[str]

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def default_workers(self, num_envs: int) -> int:
        """How many workers `num_envs` envs get when the caller names no `num_workers`: one per core."""
        return max(1, min(num_envs, usable_cores()))


@dataclass(frozen=True)
class LocalOptions(BackendOptions):
    """The local backend takes no options: its one worker runs in the caller's thread."""

    backend: ClassVar[str] = "local"

    def default_workers(self, num_envs: int) -> int:
        return 1


@dataclass(frozen=True)
class SubprocessOptions(BackendOptions):
    backend: ClassVar[str] = "subprocess"

    start_method: Literal["forkserver", "spawn", "fork"] = "forkserver"
    """How worker processes start: from a fork server (fast, the default), spawned, or forked."""
    shared_memory: bool = True
    """Array observations travel through one shared-memory array per worker instead of the socket,
    and so do a whole step's array actions, rewards and done flags, announced through shared
    counters (`rock_envs.worker.lane`); False: everything goes over the worker's socket."""
    spin: float = 0.0002
    """Seconds a worker and its caller keep checking shared memory for each other's next message
    (yielding their core meanwhile) before they sleep; 0: sleep at once. Only with shared_memory."""
    caller_worker: bool = False
    """Worker 0 runs in the caller's process: the caller steps its block while the worker processes
    step theirs, so no process waits on another (fastest for cheap envs when the workers fill every
    core). An env that crashes or hangs there takes the caller with it (`rock_envs.backends.caller_worker`)."""

    def __post_init__(self) -> None:
        if isinstance(self.spin, bool) or not isinstance(self.spin, (int, float)) or not 0 <= self.spin <= 1:
            raise EnvArgumentError(f"`make_vec(spin=...)`: expected seconds from 0 to 1, got {self.spin!r}.")
        if self.start_method not in START_METHODS:
            raise EnvArgumentError(
                f"`make_vec(start_method=...)`: expected one of {START_METHODS}, got {self.start_method!r} "
                f"(multiprocessing: cannot find context for {self.start_method!r})."
            )


def _sandbox_spec(call: str, **fields: Any) -> Any:
    """A `SandboxSpec` of worker sandboxes, with bad limits told as the caller's argument error."""
    from rock_envs.sandbox.models import SandboxSpec

    given = {k: v for k, v in fields.items() if v is not None}
    try:
        return SandboxSpec(labels={"role": "env-worker"}, **given)
    except ValueError as exc:
        raise EnvArgumentError(f"`{call}`: bad sandbox limits: {exc}") from exc


@dataclass(frozen=True)
class SandboxPlacement(BackendOptions):
    """Where the sandboxes of the backends that make them (docker, remote) are started."""

    sandbox_placement: Literal["local", "ray"] = "local"
    """On the sandbox manager's machine, or on a Ray node (the manager, this process for docker and
    the server for remote, is a Ray driver: `ray.init` or RAY_ADDRESS); each worker's frames then go
    to the sandbox's node through its relay, a byte pipe there."""
    sandbox_resources: dict[str, float] | None = None
    """Ray custom resources each sandbox's node must have (with sandbox_placement="ray")."""

    def placement_fields(self) -> dict[str, Any]:
        return {"placement": self.sandbox_placement, "resources": self.sandbox_resources}


@dataclass(frozen=True)
class DockerOptions(SandboxPlacement):
    backend: ClassVar[str] = "docker"

    image: str | None = None
    """The container image (default: rock-envs' own, built offline on first use)."""
    envs_per_container: int | None = None
    """Envs per container (default: the envs spread over one container per core)."""
    cpus: float | None = None
    """CPU limit of each container."""
    memory: int | str | None = None
    """Memory limit of each container, in bytes or as "512m", "2g"."""
    docker_client: Any = None
    """A `docker.DockerClient` to use (default: `docker.from_env()`)."""

    def __post_init__(self) -> None:
        _positive("make_vec", "envs_per_container", self.envs_per_container)
        if self.docker_client is not None and self.sandbox_placement == "ray":
            raise EnvArgumentError(
                "`make_vec(backend='docker', sandbox_placement='ray')`: `docker_client` is this process's, "
                "but the containers start on Ray nodes, each with its own engine; drop `docker_client`."
            )
        self.sandbox_spec()

    def sandbox_spec(self) -> Any:
        return _sandbox_spec(
            "make_vec(backend='docker')",
            runtime="docker",
            image=self.image,
            cpus=self.cpus,
            memory=self.memory,
            ttl=0,
            **self.placement_fields(),
        )

    def default_workers(self, num_envs: int) -> int:
        if self.envs_per_container:
            return -(-num_envs // self.envs_per_container)
        return super().default_workers(num_envs)


@dataclass(frozen=True)
class RayOptions(BackendOptions):
    backend: ClassVar[str] = "ray"

    worker_resources: dict[str, Any] | None = None
    """Resources of each worker actor: num_cpus, num_gpus, memory (bytes), resources (custom)."""
    ray_address: str | None = None
    """The cluster to join (default: the one `ray.init` finds, else a local one started here)."""
    placement: Any = "spread"
    """How actors are placed: "spread" (Ray's SPREAD), a placement group made here ("pack", "strict_pack",
    "strict_spread"), or a Ray PlacementGroup of the caller's."""
    start_timeout: float = 120.0
    """Seconds a worker actor may take to be placed, start and open its data channel (at start, and
    when a lost worker is started again) before the call raises `WorkerDiedError`."""

    def __post_init__(self) -> None:
        unknown = set(self.worker_resources or {}) - {"num_cpus", "num_gpus", "memory", "resources"}
        if unknown:
            raise EnvArgumentError(
                f"`make_vec(worker_resources=...)`: unknown keys {sorted(unknown)}; expected "
                "num_cpus, num_gpus, memory (bytes) or resources (a dict of custom resources)."
            )
        if (
            isinstance(self.start_timeout, bool)
            or not isinstance(self.start_timeout, (int, float))
            or self.start_timeout <= 0
        ):
            raise EnvArgumentError(
                f"`make_vec(start_timeout=...)`: expected a positive number of seconds, got {self.start_timeout!r}."
            )
        if self.placement is None:
            object.__setattr__(self, "placement", "spread")
        if isinstance(self.placement, str) and self.placement in PLACEMENTS:
            return
        from ray.util.placement_group import PlacementGroup

        if not isinstance(self.placement, PlacementGroup):
            raise EnvArgumentError(
                f"`make_vec(placement=...)`: expected one of {sorted(PLACEMENTS)} or a Ray "
                f"PlacementGroup, got {self.placement!r}."
            )

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.worker_resources or {"num_cpus": 1})


@dataclass(frozen=True)
class RemoteOptions(SandboxPlacement):
    backend: ClassVar[str] = "remote"

    url: str | None = None
    """The rock-envs server, e.g. "http://127.0.0.1:8080" (required); with ``data_urls``, its control plane."""
    data_urls: list[str] | None = None
    """A split server's data replicas: each worker's frames go through one of them (by its sandbox id;
    the next if that one goes away), sandboxes are made and removed on ``url``."""
    token: str | None = None
    """Its bearer token (default: ROCK_ENVS_TOKEN, else the CLI's saved one)."""
    runtime: Literal["process", "docker"] = "process"
    """The sandbox runtime on the server."""
    envs_per_sandbox: int | None = None
    """Envs per sandbox (default: the envs spread over one sandbox per core of this machine)."""
    image: str | None = None
    """The image of docker sandboxes."""
    cpus: float | None = None
    """CPU limit of each sandbox."""
    memory: int | str | None = None
    """Memory limit of each sandbox."""
    ttl: float = 120.0
    """Seconds a sandbox outlives a lost connection before the server reaps it."""
    reconnect_timeout: float = 30.0
    """Seconds to win back a dropped connection before its workers count as gone."""

    def __post_init__(self) -> None:
        if not self.url:
            raise EnvArgumentError(
                "`make_vec(backend='remote')`: expected `url=` of a rock-envs server, "
                "e.g. url='http://127.0.0.1:8080' (start one with `rock-envs serve`)."
            )
        if self.runtime not in SANDBOX_RUNTIMES:
            raise EnvArgumentError(f"`make_vec(runtime=...)`: expected 'process' or 'docker', got {self.runtime!r}.")
        _positive("make_vec", "envs_per_sandbox", self.envs_per_sandbox)
        if self.data_urls is not None and (
            isinstance(self.data_urls, str) or not all(isinstance(u, str) and u for u in self.data_urls)
        ):
            raise EnvArgumentError(
                "`make_vec(backend='remote')`: data_urls must be a list of data replica URLs, e.g. "
                f"data_urls=['http://127.0.0.1:8081', 'http://127.0.0.1:8082']; got {self.data_urls!r}."
            )
        self.sandbox_spec()

    def sandbox_spec(self) -> Any:
        return _sandbox_spec(
            "make_vec(backend='remote')",
            runtime=self.runtime,
            image=self.image,
            ttl=self.ttl,
            cpus=self.cpus,
            memory=self.memory,
            **self.placement_fields(),
        )

    def default_workers(self, num_envs: int) -> int:
        if self.envs_per_sandbox:
            return -(-num_envs // self.envs_per_sandbox)
        return super().default_workers(num_envs)


OPTIONS: dict[str, type[BackendOptions]] = {
    cls.backend: cls for cls in (LocalOptions, SubprocessOptions, DockerOptions, RayOptions, RemoteOptions)
}
OPTION_NAMES: tuple[str, ...] = tuple(dict.fromkeys(name for cls in OPTIONS.values() for name in cls.names()))
"""Every backend option, once: the keywords of `make_vec` after the env's own."""


def backends_taking(option: str) -> list[str]:
    return [name for name, cls in OPTIONS.items() if option in cls.names()]


def options_for(backend: str, given: dict[str, Any]) -> BackendOptions:
    """The options of `backend` from the keywords a caller gave (None values are left at defaults)."""
    cls = OPTIONS[backend]
    for option in given:
        if option not in cls.names():
            raise EnvArgumentError(
                f"`make_vec`: `{option}` is an option of the {' and '.join(backends_taking(option))} "
                f"backend(s), not of {backend!r}; for an env kwarg of that name pass "
                f"env_kwargs={{{option!r}: ...}}."
            )
    return cls(**{name: value for name, value in given.items() if value is not None})
