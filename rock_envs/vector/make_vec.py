"""`rock_envs.make_vec`: N copies of an env, on the backend the caller names."""

from __future__ import annotations

import os
from typing import Any, Callable, Literal, Mapping, Sequence

from gymnasium.vector import AutoresetMode

from rock_envs.backends import BACKENDS, OPTION_NAMES, OPTIONS, BackendName, create_group, options_for
from rock_envs.build import EnvFactory, NativeFactory
from rock_envs.core.errors import EnvArgumentError
from rock_envs.core.snapshot import SnapshotMode, check_mode
from rock_envs.core.spaces import ObservationMode, check_observation_mode
from rock_envs.core.trajectory import check_json
from rock_envs.registry import EnvSpec
from rock_envs.registry import spec as find_spec
from rock_envs.vector.blocks import keyed_blocks
from rock_envs.vector.env_list import common_default, distinct_ids, expand, images_of
from rock_envs.vector.native import Vectorize, use_native
from rock_envs.vector.stats import VectorCollector
from rock_envs.vector.vector_env import RockVectorEnv
from rock_envs.worker.protocol import AutoresetName, autoreset_mode_of

SPEC_DEFAULTS = ("image", "cpus", "memory")  # `EnvSpec` fields that are backend options too
BACKEND_OPTIONS = OPTION_NAMES  # every backend option keyword, once (`rock_envs.backends.options`)


def make_vec(
    env_id: str
    | EnvSpec
    | Callable[[], Any]
    | Sequence[Callable[[], Any]]
    | Sequence[str | EnvSpec]
    | Mapping[str, int],
    num_envs: int | None = None,
    backend: BackendName | None = None,
    *,
    num_workers: int | None = None,
    autoreset_mode: AutoresetName | AutoresetMode = AutoresetMode.NEXT_STEP,
    batch_size: int | None = None,
    on_error: Literal["reset", "raise"] = "reset",
    timeout: float | None = None,
    env_kwargs: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    check_actions: bool = False,
    observation_mode: ObservationMode = "same",
    snapshot_mode: SnapshotMode = "auto",
    record: str | os.PathLike[str] | None = None,
    restore: Literal["reset", "snapshot"] = "reset",
    metrics: bool = False,
    worker_threads: int | None = None,
    vectorize: Vectorize = "per_env",
    # backend options; each only for the backends that take it (see `rock_envs.backends`), None: its default
    start_method: Literal["forkserver", "spawn", "fork"] | None = None,
    shared_memory: bool | None = None,
    spin: float | None = None,
    caller_worker: bool | None = None,
    image: str | None = None,
    envs_per_container: int | None = None,
    cpus: float | None = None,
    memory: int | str | None = None,
    docker_client: Any = None,
    worker_resources: dict[str, Any] | None = None,
    ray_address: str | None = None,
    placement: Any = None,
    start_timeout: float | None = None,
    url: str | None = None,
    data_urls: list[str] | None = None,
    token: str | None = None,
    runtime: Literal["process", "docker"] | None = None,
    envs_per_sandbox: int | None = None,
    ttl: float | None = None,
    reconnect_timeout: float | None = None,
    sandbox_placement: Literal["local", "ray"] | None = None,
    sandbox_resources: dict[str, float] | None = None,
    **kwargs: Any,
) -> RockVectorEnv:
    """`num_envs` envs of `env_id` (an id, a spec, or a callable returning an env) on `backend`
    (default: the spec's `backend`, else "subprocess"). Gymnasium's `env_fns` work too: a list of
    callables, env i made by `env_fns[i]()` (`num_envs` defaults to its length). The spec's `image`, `cpus` and `memory` are
    the defaults of the backends that take them (docker, remote); on docker, a mix whose specs name
    several images puts each env in a container of its own spec's image (envs of one image share
    containers, never two images one).

    `snapshot_mode` picks how `venv.snapshot()` captures each env ("pickle", "replay", or "auto":
    pickle where it pickles); `record="DIR"` writes every episode to DIR as JSON Lines (replay them
    with `rock_envs.replay` or `rock-envs replay`); `restore="snapshot"` rebuilds the envs of a
    worker that died at their last snapshot (`venv.snapshot()` or `venv.restore()`) instead of
    resetting them. `metrics=True` puts `venv.stats()` on prometheus_client's default registry
    (serve it with `rock_envs.serve_metrics(port)`) until the vector env is closed.
    `worker_threads=K` steps up to K blocking envs of each worker at once, on
    threads (for envs that wait on I/O; default: the spec's `worker_threads`, else what the envs
    declare with a `worker_threads` class attribute, as `code:RockTasks-v0` and the sandboxed GEM
    tools do, else 1: one after another); envs with `async def step/reset` are stepped at once on
    each worker's asyncio loop without it. `vectorize="native"`
    hosts one native vector env per worker for its block (Gymnasium's `vector_entry_point`, e.g.
    CartPole's), "auto" where the env has one, "per_env" (default) one env object per slot.

    The backend options after `restore` go to the backend that takes them (an option the chosen
    backend does not take is an error); other keywords are the env's kwargs (or pass `env_kwargs`).
    `num_workers` defaults to the usable cores. `observation_mode` is Gymnasium's: "same" (every env's
    observation space equal), "different" (one shape and dtype, other bounds: the batched space is
    `batch_differing_spaces` of them), or a tuple (batched space, single space).
    """
    scope = locals()  # the keywords as given: a comprehension's own locals() would not see them
    given = {name: scope[name] for name in BACKEND_OPTIONS if scope[name] is not None}
    per_env = expand(env_id, num_envs, env_kwargs, kwargs)  # a mixed batch, or per-env kwargs: one (spec, kwargs) each
    if per_env is not None:
        num_envs = len(per_env)
    env_fns = list(env_id) if isinstance(env_id, (list, tuple)) and per_env is None else None
    if env_fns is not None:
        if not env_fns or not all(callable(fn) for fn in env_fns):
            raise EnvArgumentError("`make_vec`: a list of env functions must be non-empty and hold only callables.")
        if num_envs is None:
            num_envs = len(env_fns)
        elif num_envs != len(env_fns):
            raise EnvArgumentError(
                f"`make_vec`: num_envs={num_envs} but {len(env_fns)} env functions were given; give one per env."
            )
    if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
        raise EnvArgumentError(f"`make_vec`: num_envs must be a positive int, got {num_envs!r}.")
    try:
        mode = autoreset_mode_of(autoreset_mode)
    except ValueError as exc:
        raise EnvArgumentError(f"`make_vec`: {exc}.") from None
    if on_error not in ("reset", "raise"):
        raise EnvArgumentError(f"`make_vec`: on_error must be 'reset' or 'raise', got {on_error!r}.")
    check_observation_mode(observation_mode)
    check_mode(snapshot_mode, "make_vec")
    if worker_threads is not None and (
        not isinstance(worker_threads, int) or isinstance(worker_threads, bool) or worker_threads < 1
    ):
        raise EnvArgumentError(
            f"`make_vec`: worker_threads must be a positive int (threads per worker), got {worker_threads!r}; "
            "pass e.g. worker_threads=32 for envs whose steps wait on I/O."
        )
    if restore not in ("reset", "snapshot"):
        raise EnvArgumentError(f"`make_vec`: restore must be 'reset' or 'snapshot', got {restore!r}.")
    env_spec: EnvSpec | None
    if per_env is not None:  # one spec for the vector env where every env has the same id
        env_spec = per_env[0][0] if len(distinct_ids(per_env)) == 1 else None
    elif isinstance(env_id, EnvSpec):
        env_spec = env_id
    elif isinstance(env_id, str):
        env_spec = find_spec(env_id)
    else:
        env_spec = None  # a callable (or a list of them) that returns an env
    specs = [spec for spec, _ in per_env] if per_env is not None else [env_spec] if env_spec is not None else []
    mix = per_env if per_env is not None else [(spec, {}) for spec in specs]

    def spec_default(option: str) -> Any:
        return common_default(mix, option) if mix else None

    name: str = backend or spec_default("backend") or "subprocess"
    if name not in BACKENDS:
        raise EnvArgumentError(f"`make_vec`: unknown backend {name!r}; expected one of {list(BACKENDS)}.")
    # a docker mix of images: each env in a container of its spec's image (the default one where it names none)
    images = images_of(per_env) if per_env is not None and name == "docker" and "image" not in given else None
    for option in SPEC_DEFAULTS:  # the specs' container defaults, where the backend takes them and the caller gave none
        if option == "image" and images is not None:
            continue
        if option in OPTIONS[name].names() and option not in given and spec_default(option) is not None:
            given[option] = spec_default(option)
    options = options_for(name, given)
    shared_kwargs = {**kwargs, **(env_kwargs or {})} if per_env is None else {}  # type: ignore[dict-item]  # a dict here
    if worker_threads is None:  # the specs' default: their envs wait on I/O
        worker_threads = spec_default("worker_threads")
    native = use_native(vectorize, env_spec, per_env is not None, mode, record, restore)
    factory: Any = _factory(env_spec, per_env, env_fns or [env_id] * num_envs, shared_kwargs)
    if native:
        assert env_spec is not None  # use_native checked it
        factory = NativeFactory(env_spec, shared_kwargs)
    if record is not None:
        for spec, each in per_env if per_env is not None else [(env_spec, factory.kwargs)]:
            if spec is None:
                raise EnvArgumentError(
                    "`make_vec`: record= needs a registered env id or spec (a record names the env to replay it); "
                    "register the callable with `rock_envs.register(...)` and pass its id."
                )
            check_json(each, "kwargs", "make_vec")
    workers = num_workers if num_workers is not None else options.default_workers(num_envs)
    if not isinstance(workers, int) or not 1 <= workers <= num_envs:
        raise EnvArgumentError(f"`make_vec`: num_workers must be in 1..num_envs ({num_envs}), got {workers!r}.")
    blocks = worker_images = None
    if images is not None:  # no container holds envs of two images
        per_container = getattr(options, "envs_per_container", None) if num_workers is None else None
        blocks = keyed_blocks(images, num_workers, options.default_workers(num_envs), per_container)
        workers, worker_images = len(blocks), [images[block[0]] for block in blocks]
    group = create_group(name, workers, options, worker_images)
    venv = RockVectorEnv(
        group,
        factory,
        num_envs,
        autoreset_mode=mode,
        on_error=on_error,
        batch_size=batch_size,
        timeout=timeout,
        spec=env_spec,
        env_specs=specs if per_env is not None else None,
        check_actions=check_actions,
        observation_mode=observation_mode,
        snapshot_mode=snapshot_mode,
        record=None if record is None else os.fspath(record),
        restore=restore,
        worker_threads=worker_threads,
        native=native,
        blocks=blocks,
    )
    if metrics:
        label = env_spec.id if env_spec is not None else "mixed" if per_env is not None else "callable"
        venv.metrics = VectorCollector(venv._d.stats, label)
    return venv


def _factory(env_spec: EnvSpec | None, per_env: Any, env_fns: list[Any], env_kwargs: dict[str, Any]) -> EnvFactory:
    """What builds env i in its worker: from one spec per env (a mix), the spec, or the callables."""
    if per_env is not None:
        return EnvFactory(env_spec, None, per_env=per_env)
    if env_spec is not None:
        return EnvFactory(env_spec, env_kwargs)
    if env_kwargs:
        raise EnvArgumentError(f"`make_vec`: env kwargs {sorted(env_kwargs)} cannot go to a callable; bind them in it.")
    return EnvFactory(None, None, env_fns=env_fns)
