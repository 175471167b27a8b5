"""`rock-envs serve`: the sandbox server on uvicorn (127.0.0.1 and a bearer token by default)."""

from __future__ import annotations

from typing import Optional

import typer


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind; keep 127.0.0.1 unless you mean to expose it."),
    port: int = typer.Option(8080, help="TCP port."),
    runtime: str = typer.Option("process", help="Sandbox runtime to offer: process or docker."),
    token: Optional[str] = typer.Option(
        None, envvar="ROCK_ENVS_TOKEN", help="Bearer token; generated, printed once and written 0600 if absent."
    ),
    token_file: Optional[str] = typer.Option(None, help="Where a generated token is written (the SDK reads it)."),
    runtime_dir: Optional[str] = typer.Option(None, help="Where sandboxes and their state live."),
    max_sandboxes: Optional[int] = typer.Option(None, help="Cap on sandboxes on this server (429 past it)."),
    max_envs: Optional[int] = typer.Option(None, help="Cap on envs (remote backend) on this server."),
    max_sandboxes_per_token: Optional[int] = typer.Option(None, help="Cap on sandboxes per bearer token."),
    max_envs_per_token: Optional[int] = typer.Option(None, help="Cap on envs per bearer token."),
    extra_token: list[str] = typer.Option([], help="Another accepted bearer token (repeatable)."),
    pool: list[str] = typer.Option(
        [], help="A warm pool, NAME=SIZE[:runtime[:image]] (repeatable): sandboxes started ahead of demand."
    ),
    max_starting: Optional[int] = typer.Option(
        None, help="Sandboxes started at once; more wait in line (default: 4 per usable core)."
    ),
    image_map: list[str] = typer.Option(
        [], help="SRC=DST: a ROCK client's image SRC runs as the local image DST (repeatable; never pulled)."
    ),
    metrics_public: bool = typer.Option(
        False, help="Serve GET /metrics without the token (Prometheus on the same machine); loopback only."
    ),
    metrics: bool = typer.Option(True, help="Serve GET /metrics and time every request (--no-metrics: neither)."),
    role: str = typer.Option(
        "single",
        help="single: one server (needs nothing else). control: owns create/delete and publishes its sandboxes "
        "to --redis. data: a replica serving exec, files, jobs and env frames of --control's sandboxes.",
    ),
    control: Optional[str] = typer.Option(None, help="--role data: the control plane's URL."),
    redis: Optional[str] = typer.Option(
        None, help="--role control: the Redis its data replicas read, e.g. redis://127.0.0.1:6379/0."
    ),
    namespace: str = typer.Option("rock-envs", help="The prefix of this cluster's keys in Redis."),
) -> None:
    """Start the sandbox server. Every route but /health needs the token: `Authorization: Bearer <token>`
    (ROCK's wire under /apis/ also takes XRL-Authorization, X-Key, or HTTP Basic with the token as password)."""
    if runtime not in ("process", "docker"):
        raise typer.BadParameter(f"expected process or docker, got {runtime!r}", param_hint="--runtime")
    if role not in ("single", "control", "data"):
        raise typer.BadParameter(f"expected single, control or data, got {role!r}", param_hint="--role")
    from rock_envs.sandbox.errors import InvalidRequestError
    from rock_envs.sandbox.server.run import limit_options, rock_options, start_options
    from rock_envs.sandbox.server.run import serve as run

    try:
        starting = start_options(pool, max_starting)
    except InvalidRequestError as exc:
        raise typer.BadParameter(str(exc), param_hint="--pool") from None

    run(
        host=host,
        port=port,
        runtime=runtime,
        token=token,
        token_file=token_file,
        runtime_dir=runtime_dir,
        **limit_options(max_sandboxes, max_envs, max_sandboxes_per_token, max_envs_per_token, extra_token),
        **starting,
        **rock_options(runtime, image_map),
        metrics_public=metrics_public,
        metrics=metrics,
        role=role,
        control=control,
        redis=redis,
        namespace=namespace,
    )
