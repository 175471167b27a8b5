"""Run the server with uvicorn: token handling (generated, printed once, written 0600) and signals."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any

from ..config import default_token_file


def write_token(token: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    runtime: str = "process",
    token: str | None = None,
    token_file: str | None = None,
    runtime_dir: str | None = None,
    log_level: str = "warning",
    role: str = "single",
    control: str | None = None,
    redis: str | None = None,
    namespace: str = "rock-envs",
    **app_options: Any,
) -> None:
    """``role``: ``single`` (the default: one server, nothing else needed), ``control`` (owns create
    and delete, publishes its sandboxes to Redis at ``redis``) or ``data`` (a replica of the control
    plane at ``control``; it finds the Redis there unless ``redis`` is given)."""
    import uvicorn

    from .app import create_app

    check_role(role, control, redis)

    if app_options.get("metrics_public") and not is_loopback(host):
        raise SystemExit(
            f"rock-envs serve: --metrics-public serves /metrics without the token, so it is only allowed on a "
            f"loopback address; got --host {host}. Drop --metrics-public and give Prometheus the token."
        )
    path = Path(token_file) if token_file else default_token_file()
    if role == "data":
        assert control is not None  # check_role
        return serve_data(host, port, control, token or _saved_token(path), redis, namespace, log_level, app_options)
    if token is None:
        token = secrets.token_urlsafe(32)
        write_token(token, path)
        print(f"rock-envs sandbox server token (also written to {path}, mode 0600):\n{token}", flush=True)
    runtimes = ("process", "docker") if runtime == "docker" else ("process",)
    if role == "control":
        assert redis is not None  # check_role
        store_check(redis, namespace)
        from ..cluster.redis_store import RedisStore

        cluster = {"role": "control", "store": redis, "namespace": namespace}
        app_options = {**app_options, "store": RedisStore(redis, namespace), "cluster": cluster}
    app = create_app(token=token, runtime_dir=runtime_dir, runtimes=runtimes, **app_options)
    print(f"rock-envs sandbox server listening on http://{host}:{port} (runtime {runtime}, role {role})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws="websockets-sansio")


ROLES = ("single", "control", "data")


def check_role(role: str, control: str | None, redis: str | None) -> None:
    if role not in ROLES:
        raise SystemExit(f"rock-envs serve: --role takes one of {', '.join(ROLES)}; got {role!r}.")
    if role == "data" and not control:
        raise SystemExit(
            "rock-envs serve --role data: needs --control URL, the control plane it serves "
            "(e.g. --control http://127.0.0.1:8080, a `rock-envs serve --role control`)."
        )
    if role == "control" and not redis:
        raise SystemExit(
            "rock-envs serve --role control: needs --redis URL, the store its data replicas read "
            "(e.g. --redis redis://127.0.0.1:6379/0, a running `redis-server`)."
        )
    if role == "single" and (control or redis):
        raise SystemExit(
            "rock-envs serve: --control and --redis are for a split server; add --role control (with --redis) "
            "or --role data (with --control)."
        )


def store_check(url: str, namespace: str) -> None:
    """Exit with a clear message unless Redis answers at ``url`` (before the server starts)."""
    import asyncio

    from ..cluster.redis_store import RedisStore
    from ..cluster.store import StoreUnreachableError

    async def ping() -> None:
        store = await RedisStore.connect(url, namespace)
        await store.aclose()

    try:
        asyncio.run(ping())
    except StoreUnreachableError as exc:
        raise SystemExit(f"rock-envs serve: {exc}") from None
    except ValueError as exc:  # not a redis:// URL
        raise SystemExit(
            f"rock-envs serve: --redis {url!r} is not a Redis URL ({exc}); e.g. redis://127.0.0.1:6379/0"
        ) from None


def _saved_token(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    raise SystemExit(
        "rock-envs serve --role data: needs the control plane's token: pass --token (or set ROCK_ENVS_TOKEN), "
        f"or run it where the control plane wrote its token file ({path})."
    )


def serve_data(
    host: str,
    port: int,
    control: str,
    token: str,
    redis: str | None,
    namespace: str,
    log_level: str,
    app_options: dict[str, Any],
) -> None:
    """A data replica: ask the control plane where its store is, check it answers, then serve."""
    import uvicorn

    from ..errors import SandboxError
    from .data_app import create_data_app, discover

    try:
        found = discover(control, token)
    except SandboxError as exc:
        raise SystemExit(str(exc)) from None
    redis = redis or str(found["store"])
    namespace = str(found.get("namespace") or namespace)
    store_check(redis, namespace)
    extra = tuple(app_options.get("extra_tokens", ()))
    app = create_data_app(control, token, redis, namespace, extra_tokens=extra)
    print(f"rock-envs data replica listening on http://{host}:{port} (control {control})", flush=True)
    # Keep idle connections longer than its clients do (httpx drops them after 5 s): with equal
    # timeouts a client may send on a connection the server is closing, and a cut-off exec is
    # never sent again (it may have run), so the SDK would report the replica gone.
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws="websockets-sansio", timeout_keep_alive=30)


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m rock_envs.sandbox.server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--runtime", choices=["process", "docker"], default="process")
    p.add_argument("--token", default=os.environ.get("ROCK_ENVS_TOKEN"))
    p.add_argument("--token-file", default=None)
    p.add_argument("--runtime-dir", default=None)
    p.add_argument("--extra-token", action="append", default=[], help="another accepted token (repeatable)")
    p.add_argument("--image-map", action="append", default=[], metavar="SRC=DST", help="ROCK image SRC runs DST")
    for name in ("max-sandboxes", "max-envs", "max-sandboxes-per-token", "max-envs-per-token", "max-starting"):
        p.add_argument(f"--{name}", type=int, default=None)
    p.add_argument("--pool", action="append", default=[], help="NAME=SIZE[:runtime[:image]] (repeatable)")
    p.add_argument("--metrics-public", action="store_true", help="serve /metrics without the token (loopback only)")
    p.add_argument("--no-metrics", action="store_true", help="no /metrics, no request timing")
    p.add_argument("--role", default="single", help="single (default), control or data")
    p.add_argument("--control", default=None, help="--role data: the control plane's URL")
    p.add_argument("--redis", default=None, help="--role control: the Redis its replicas read (redis://HOST:PORT/DB)")
    p.add_argument("--namespace", default="rock-envs", help="the prefix of this cluster's Redis keys")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    serve(
        args.host,
        args.port,
        args.runtime,
        args.token,
        args.token_file,
        args.runtime_dir,
        **limit_options(
            args.max_sandboxes, args.max_envs, args.max_sandboxes_per_token, args.max_envs_per_token, args.extra_token
        ),
        **start_options(args.pool, args.max_starting),
        **rock_options(args.runtime, args.image_map),
        metrics_public=args.metrics_public,
        metrics=not args.no_metrics,
        role=args.role,
        control=args.control,
        redis=args.redis,
        namespace=args.namespace,
    )


def rock_options(runtime: str, image_map: list[str]) -> dict[str, Any]:
    """``create_app`` keywords for ROCK's wire: its sandboxes run on ``runtime``; ``SRC=DST`` image maps."""
    from .rock_wire import RockWireConfig

    mapping = {}
    for item in image_map:
        src, sep, dst = item.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise SystemExit(
                f"rock-envs serve: --image-map takes SRC=DST (e.g. python:3.11=rock-envs:latest), got {item!r}"
            )
        mapping[src.strip()] = dst.strip()
    return {"rock": RockWireConfig(runtime=runtime, image_map=mapping)}


def limit_options(
    max_sandboxes: int | None,
    max_envs: int | None,
    max_sandboxes_per_token: int | None,
    max_envs_per_token: int | None,
    extra_tokens: list[str],
) -> dict[str, Any]:
    """``create_app`` keywords for the caps (see ``limits.py``) and the extra tokens."""
    from .limits import Limits

    limits = Limits(max_sandboxes, max_envs, max_sandboxes_per_token, max_envs_per_token)
    return {"limits": limits, "extra_tokens": tuple(extra_tokens)}


def start_options(pools: list[str], max_starting: int | None) -> dict[str, Any]:
    """``create_app`` keywords for warm pools (``NAME=SIZE[:runtime[:image]]`` each) and the starting cap."""
    return {"pools": [parse_pool(text) for text in pools], "max_starting": max_starting}


def parse_pool(text: str) -> Any:
    """``NAME=SIZE[:runtime[:image]]`` as a ``PoolRequest``; a clear error naming the flag otherwise."""
    from pydantic import ValidationError

    from ..errors import InvalidRequestError
    from ..models import PoolRequest, SandboxSpec

    name, sep, rest = text.partition("=")
    size, _, rest = rest.partition(":")
    runtime, _, image = rest.partition(":")
    try:
        if not sep or not size.isdigit():
            raise ValueError("expected NAME=SIZE[:runtime[:image]]")
        spec = SandboxSpec.model_validate({"runtime": runtime or "process", "image": image or None})
        return PoolRequest(name=name, spec=spec, size=int(size))
    except (ValueError, ValidationError) as exc:
        raise InvalidRequestError(
            f"`--pool {text}`: {exc}; e.g. `--pool small=8` or `--pool py=4:docker:rock-envs:latest`."
        ) from None
