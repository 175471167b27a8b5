"""Request and response models shared by the server, the SDK and the manager (one source of truth)."""

from __future__ import annotations

import re
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .model_service.models import ModelServiceSpec

WORKER_ARGV = ["{python}", "-m", "rock_envs.worker", "--fd", "{fd}"]
"""How an env worker starts inside a sandbox: ``{fd}`` becomes its socket, ``{python}`` the sandbox's Python."""
NAME = r"^[A-Za-z0-9_.-]{1,64}$"
SESSION_NAME = r"^[A-Za-z0-9_.-]{1,128}$"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """Bytes from ``512m``, ``1g``, ``1.5GiB`` or a plain integer."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"expected a size like '512m' or '1g' or a number of bytes, got {value!r}")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** "_kmgt".index(unit or "_"))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SandboxSpec(_Model):
    """What a sandbox is made of. Every field is optional; defaults give a small, offline sandbox."""

    runtime: Literal["process", "docker"] = "process"
    """Where it runs: ``process`` (a process group in its own namespaces) or ``docker`` (a container)."""
    image: Optional[str] = None
    """Container image for the ``docker`` runtime; ignored by ``process``."""
    cpus: Optional[float] = Field(None, ge=0.01, le=1024)
    """CPU share (1.0 = one core, at least 0.01); ``None`` leaves it unlimited."""
    memory: Optional[int | str] = "1g"
    """Memory limit for all the sandbox's processes together, as bytes or ``"512m"``/``"1g"``."""
    pids_limit: Optional[int] = Field(512, ge=16, le=1_000_000)
    """Most processes and threads alive at once; a fork bomb stops here."""
    cpu_time: Optional[int] = Field(None, ge=1)
    """CPU seconds each process may use (``RLIMIT_CPU``); ``None``: no limit."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables for every session, command and job."""
    ttl: float = Field(600.0, ge=0, le=7 * 24 * 3600)
    """Idle seconds before the sandbox is removed; each use refreshes it; 0 keeps it until stopped."""
    network: bool = False
    """Whether the sandbox may reach the network; off by default."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Free-form labels, for ``list`` filters."""
    lease: Optional[float] = Field(None, gt=0, le=24 * 3600)
    """Owner lease in seconds: the sandbox is removed when its owner has not renewed it for this long
    (the SDK renews it while the handle is open), so a client that vanishes loses its sandboxes."""
    placement: Literal["local", "ray"] = "local"
    """``local``: on the manager's machine; ``ray``: Ray picks a node with the sandbox's cpus, memory and
    ``resources``, an actor there starts it, and every call reaches it through a relay on that node
    (the caller must have called ``ray.init``, or set ``RAY_ADDRESS``)."""
    resources: dict[str, float] = Field(default_factory=dict)
    """Ray custom resources the sandbox's node must have (``placement="ray"`` only), e.g.
    ``{"node_a": 0.01}`` to land on the node started with ``--resources '{"node_a": 1}'``."""
    writable_root: bool = False
    """A private writable view of the whole filesystem: absolute paths (``/tmp``, ``/root``, ``/etc``,
    ``/data/logs``, ...) are writable inside, their changes private to the sandbox and gone with it
    (an overlay of the host's ``/`` on the process runtime, which needs root; a writable container
    layer on docker). Commands then start in ``/`` with ``HOME=/root``."""
    model_service: Optional[ModelServiceSpec] = None
    """An OpenAI-compatible endpoint inside the sandbox (``OPENAI_BASE_URL``/``OPENAI_API_KEY`` set), answered
    by the trainer or proxied upstream; ``"trainer"`` or ``"proxy"`` are short for the spec with that mode."""
    snapshot: Optional[str] = Field(None, pattern=r"^snap-[0-9a-f]{12}$")
    """Start from this snapshot (its id, or a :class:`SandboxSnapshot`): its files, and for ``docker``
    its committed image. The runtime must be the snapshot's."""

    @field_validator("snapshot", mode="before")
    @classmethod
    def _snapshot(cls, value: object) -> object:
        return getattr(value, "id", value) if isinstance(value, BaseModel) else value

    @field_validator("model_service", mode="before")
    @classmethod
    def _model_service(cls, value: object) -> object:
        return {"mode": value} if isinstance(value, str) else value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: int | str | None) -> int | str | None:
        if value is None:
            return None
        size = parse_size(value)
        if size < 16 * 1024 * 1024:
            raise ValueError(f"memory must be at least 16m, got {value!r}")
        return value

    @model_validator(mode="after")
    def _resources_need_ray(self) -> SandboxSpec:
        if self.resources and self.placement != "ray":
            raise ValueError(
                f"resources {self.resources} are Ray custom resources: they need placement='ray' "
                f"(got placement={self.placement!r})"
            )
        if any(amount <= 0 for amount in self.resources.values()):
            raise ValueError(f"resources must be positive amounts, got {self.resources}")
        return self

    def memory_bytes(self) -> int | None:
        return None if self.memory is None else parse_size(self.memory)


class SandboxInfo(_Model):
    id: str
    status: Literal["starting", "running", "stopped", "dead", "pooled"]
    spec: SandboxSpec
    created_at: float
    last_used_at: float
    root: str
    """The sandbox's working directory, as its own processes see it."""
    isolation: list[str] = Field(default_factory=list)
    """Which protections applied: ``namespaces``, ``readonly-host``, ``cgroup-pids``, ..."""
    container: Optional[str] = None
    """The container's id (runtime ``docker``), for ``docker logs`` or ``docker inspect``."""
    pool: Optional[str] = None
    """The warm pool it came from, if any (``recycle`` returns it there)."""


class PoolRequest(_Model):
    """A warm pool: ``size`` sandboxes of ``spec`` started ahead of demand, at most ``max_size`` in all."""

    name: str = Field(pattern=NAME)
    spec: SandboxSpec = Field(default_factory=SandboxSpec)
    size: int = Field(4, ge=0, le=100_000)
    max_size: Optional[int] = Field(None, ge=1, le=100_000)
    """Members ready plus claimed; a claim beyond it waits for one to come back (default: no cap)."""


class PoolStats(_Model):
    name: str
    spec: SandboxSpec
    size: int
    max_size: Optional[int]
    ready: int
    starting: int
    claimed: int
    claims: int
    """Claims served from ready members."""
    misses: int
    """Claims that found no ready member and started one."""
    recycled: int
    replaced: int
    """Members that died while waiting, and were replaced."""
    refill_p50_ms: Optional[float]
    refill_max_ms: Optional[float]


class PoolList(_Model):
    pools: list[PoolStats]


class ClaimRequest(_Model):
    pool: str = Field(pattern=NAME)
    labels: dict[str, str] = Field(default_factory=dict)
    ttl: Optional[float] = Field(None, ge=0, le=7 * 24 * 3600)
    lease: Optional[float] = Field(None, gt=0, le=24 * 3600)
    timeout: float = Field(60.0, gt=0, le=3600)


class LeaseRequest(_Model):
    release: bool = False
    """True: drop the lease for good (a detached sandbox lives by its ``ttl`` alone)."""


class LeasesRequest(_Model):
    """Renew the owner leases of many sandboxes in one call (what the SDK's lease keeper sends)."""

    sandbox_ids: list[str] = Field(max_length=100_000)


class LeasesRenewed(_Model):
    renewed: list[str]
    missing: list[str]
    """Ids that name no sandbox here any more (stopped, reaped): their holders stop renewing them."""


class ManagerStats(_Model):
    """How many sandboxes are where, now and since the manager started."""

    starting: int
    running: int
    dead: int
    pooled: int
    """Ready members of warm pools, waiting to be claimed (counted apart from ``running``)."""
    waiting_to_start: int
    """Creates queued behind ``max_starting``."""
    max_starting: int
    max_sandboxes: int
    swept: int
    """Sandboxes left by an earlier manager on this runtime dir, and removed."""
    lease_expired: int
    ttl_reaped: int


class SandboxList(_Model):
    sandboxes: list[SandboxInfo]


class ListRequest(_Model):
    """Filters for listing sandboxes; each one given must match."""

    status: Optional[Literal["starting", "running", "stopped", "dead", "pooled"]] = None
    runtime: Optional[Literal["process", "docker"]] = None
    labels: dict[str, str] = Field(default_factory=dict)


class SessionRequest(_Model):
    session: str = Field(pattern=SESSION_NAME)
    env: Optional[dict[str, str]] = None
    cwd: Optional[str] = None
    inherit_env: bool = True
    """Start from the sandbox's environment; ``False``: only its ``PATH`` and ``HOME``, and ``env``."""
    tty: bool = False
    """An interactive bash on a pseudo-terminal: stdout and stderr merged in one stream, ``\\r\\n``
    line ends, job lines such as ``[1] 4242`` (``cmd &``) and ``[1]+  Done ...``, as ROCK's sessions."""
    source: list[str] = Field(default_factory=list)
    """Files sourced when the session starts, in order; their errors are ignored."""
    idle_timeout: Optional[float] = Field(None, gt=0)
    """Seconds unused, with no process of its own still running, after which the session is closed."""
    user: Optional[str] = Field(None, max_length=64)
    """Run the session's shell as this user of the sandbox (needs a sandbox allowed to switch users)."""


class SessionRef(_Model):
    """One bash session of a sandbox, by name: what closing one takes and what both session calls answer."""

    session: str = Field(pattern=SESSION_NAME)


class RunRequest(_Model):
    cmd: str = Field(max_length=1_000_000)
    session: Optional[str] = Field(None, pattern=SESSION_NAME)
    """Run in this bash session (state persists); ``None`` runs ``bash -c`` in a fresh process group."""
    timeout: float = Field(60.0, gt=0, le=24 * 3600)
    max_output: Optional[int] = Field(None, ge=1, le=1 << 30)
    """Bytes kept per stream; the rest is dropped and ``truncated`` set."""
    env: Optional[dict[str, str]] = None
    cwd: Optional[str] = None
    argv: Optional[list[str]] = Field(None, min_length=1)
    """Without a session: run exactly this program and arguments, no shell (``cmd`` is then only a
    label); a program that is not there gives ``exit_code`` -1 and the reason in ``stderr``."""
    inherit_env: bool = True
    """Without a session: start from the sandbox's environment; ``False``: only ``env``."""
    syntax_check: bool = False
    """Check ``cmd`` with ``bash -n`` first; a syntax error is answered with ``syntax_error`` set, unrun."""


class CommandResult(_Model):
    output: str
    stderr: str
    exit_code: Optional[int]
    timed_out: bool = False
    truncated: bool = False
    syntax_error: bool = False
    """``cmd`` did not parse (``syntax_check``): it did not run, ``stderr`` says why."""
    note: str = ""
    """Anything unusual, e.g. a session that had to be restarted after a timeout."""


CommandEvent = dict[str, Any]
"""A streamed command's event: ``{"type": "chunk", "stream", "data"}``, then ``{"type": "result", **CommandResult}``."""


class JobRequest(_Model):
    cmd: str = Field(max_length=1_000_000)
    env: Optional[dict[str, str]] = None
    cwd: Optional[str] = None


class JobRef(_Model):
    """One job of a sandbox, by id."""

    job_id: str = Field(min_length=1, max_length=128)


class WaitJobRequest(JobRef):
    timeout: float = Field(60.0, gt=0, le=24 * 3600)
    """Seconds to wait for the job to end before :class:`CommandTimeoutError`."""


class JobLogsRequest(JobRef):
    stream: Literal["stdout", "stderr"] = "stdout"
    offset: int = Field(0, ge=0)
    """Where to start in the log, in bytes; pass the last answer's ``next_offset`` to follow it."""
    limit: Optional[int] = Field(None, ge=1, le=1 << 30)
    """Most bytes to return; ``None``: the agent's default."""


class JobInfo(_Model):
    job_id: str
    command: str
    pid: int
    status: Literal["running", "exited", "killed"]
    exit_code: Optional[int]
    started_at: float
    ended_at: Optional[float]


class JobList(_Model):
    jobs: list[JobInfo]


class JobLogs(_Model):
    job: JobInfo
    stream: Literal["stdout", "stderr"]
    offset: int
    next_offset: int
    data: str


class FileEntry(_Model):
    name: str
    type: Literal["file", "dir", "symlink"]
    size: int
    mode: int
    mtime: float


class FileList(_Model):
    entries: list[FileEntry]


class FileQuery(_Model):
    """A path in the sandbox, for listing or deleting."""

    path: str = Field(".", min_length=1, max_length=4096)
    recursive: bool = False


class UploadRequest(_Model):
    """Where an upload goes; its bytes come as a stream beside it."""

    path: str = Field(min_length=1, max_length=4096)
    tar: bool = False
    """The bytes are a tar stream, extracted under ``path`` (members escaping it are refused)."""
    mode: Optional[int] = Field(None, ge=0, le=0o7777)
    """Permission bits for a plain file; ``None``: 0644."""


class DownloadRequest(_Model):
    path: str = Field(min_length=1, max_length=4096)
    tar: bool = False
    """Send a directory as a tar stream."""


class WorkerRequest(_Model):
    """An env worker to start in the sandbox; its frames then go to it untouched."""

    argv: list[str] = Field(default_factory=lambda: list(WORKER_ARGV))
    env: Optional[dict[str, str]] = None


class TransferResult(_Model):
    path: str
    size: int


class ErrorDetail(_Model):
    type: str
    message: str


class ErrorBody(_Model):
    error: ErrorDetail


class ErrorEvent(_Model):
    """The last line of a streamed answer that failed after its status line was sent."""

    type: Literal["error"] = "error"
    error: ErrorDetail


class SnapshotRequest(_Model):
    """What to capture of a sandbox."""

    name: Optional[str] = Field(None, pattern=NAME)
    """A name to find it by in listings; ``None``: none."""
    memory: bool = False
    """Also checkpoint the sandbox's processes (CRIU), so that sandboxes made from it resume them."""


class SandboxSnapshot(_Model):
    """A sandbox's filesystem changes at one moment (its own directory tree; for ``docker`` also the
    container's changes, committed to a local image), from which new sandboxes start."""

    id: str
    name: Optional[str] = None
    sandbox_id: str
    """The sandbox it was taken from (which may be gone since)."""
    runtime: Literal["process", "docker"]
    spec: SandboxSpec
    """The spec of that sandbox: ``Sandbox.restore(snapshot)`` starts one like it."""
    created_at: float
    size: int
    """Bytes of files captured."""
    image: Optional[str] = None
    """``docker``: the local image the container's changes were committed to."""
    memory: bool = False


class SnapshotList(_Model):
    snapshots: list[SandboxSnapshot]


class SnapshotQuery(_Model):
    """Filters for listing snapshots; each one given must match."""

    name: Optional[str] = Field(None, pattern=NAME)
    sandbox_id: Optional[str] = Field(None, max_length=64)
