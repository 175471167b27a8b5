"""`EnvSpec`: everything needed to build an env, and the defaults the backends read.

It lives in `core` so that everything may name it (the registry fills it, `make` and the backends
read it) without importing the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class EnvSpec:
    """Everything needed to build an env, and the defaults later backends read."""

    id: str
    """The env id, e.g. `game:Sokoban-v0-easy`."""
    entry_point: str | Callable[..., Any]
    """`"module:attr"` or a callable returning a GEM or Gymnasium env."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments passed to the entry point; `make(id, **kw)` overrides them."""
    source: str = "runtime"
    """Where the id came from: runtime, plugin:<package>, catalog:<file>, gem or gymnasium."""
    backend: str | None = None
    """The backend this env prefers when the caller picks none; None: `make` runs it "local",
    `make_vec` on "subprocess"."""
    image: str | None = None
    """The container image for the docker and remote backends when the caller gives no `image=`;
    None: `$ROCK_ENVS_IMAGE`, else rock-envs' own image."""
    cpus: float | None = None
    """The CPU limit of each worker's container or sandbox (docker, remote) when the caller gives no
    `cpus=`; None: unlimited."""
    memory: str | None = None
    """The memory limit of each worker's container or sandbox (docker, remote), e.g. `"512m"`, when the
    caller gives no `memory=`; None: the backend's default."""
    vector_entry_point: str | Callable[..., Any] | None = None
    """A native vector implementation, used by `make_vec(..., vectorize="native")`: `"module:attr"`
    or a callable `(num_envs, **kwargs) -> gymnasium.vector.VectorEnv`; Gymnasium ids get their own
    (CartPole-v1: `CartPoleVectorEnv`)."""
    worker_threads: int | None = None
    """Threads per worker that step this env's envs at once when a `make_vec` call gives no
    `worker_threads=` (envs that wait on a sandbox, a tool, an HTTP call); None: one after another."""
    needs: str | None = None
    """What the env needs that a plain install lacks (data, a network); None: works offline."""
    description: str = ""
    nondeterministic: bool = False
    """Read by `gymnasium.utils.env_checker.check_env`: same seed need not give same trajectory."""

    def make(self, **kwargs: Any) -> Any:
        """`rock_envs.make(self, **kwargs)`."""
        from rock_envs.make import make  # the face, above core: imported when called, never at import

        return make(self, **kwargs)
