"""`rock-envs sandbox create|ls|exec|shell|cp|rm|snapshot`: sandboxes on a running `rock-envs serve`."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Coroutine, Optional, TypeVar

import typer

from rock_envs.sandbox import InvalidRequestError, Sandbox, SandboxConfig, SandboxError, SyncSandbox
from rock_envs.sandbox.models import ManagerStats, PoolList, SandboxList

T = TypeVar("T")
app = typer.Typer(help="Sandboxes on a rock-envs server (start one with `rock-envs serve`).", no_args_is_help=True)
URL = typer.Option("http://127.0.0.1:8080", "--url", envvar="ROCK_ENVS_URL", help="The server's base URL.")
TOKEN = typer.Option(None, "--token", envvar="ROCK_ENVS_TOKEN", help="Bearer token (default: the token file).")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except SandboxError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


async def _attach(sid: str, url: str, token: Optional[str]) -> Sandbox:
    return await Sandbox.attach(sid, SandboxConfig(base_url=url, token=token))


@app.command()
def create(
    url: str = URL,
    token: Optional[str] = TOKEN,
    runtime: str = typer.Option("process", help="process or docker."),
    image: Optional[str] = typer.Option(None, help="Image (docker runtime)."),
    memory: str = typer.Option("1g", help="Memory limit, e.g. 512m."),
    cpus: Optional[float] = typer.Option(None, help="CPU share."),
    ttl: float = typer.Option(600.0, help="Idle seconds before removal."),
    network: bool = typer.Option(False, help="Allow network access."),
) -> None:
    """Create a sandbox and print its id."""

    async def go() -> str:
        config = SandboxConfig(
            base_url=url,
            token=token,
            runtime=runtime,
            image=image,
            memory=memory,
            cpus=cpus,
            ttl=ttl,
            network=network,
        )
        sb = await Sandbox(config).start()
        await sb.detach()
        return sb.id

    typer.echo(_run(go()))


@app.command("ls")
def list_sandboxes(url: str = URL, token: Optional[str] = TOKEN) -> None:
    """List the server's sandboxes."""
    from rich.console import Console
    from rich.table import Column, Table

    from rock_envs.sandbox.models import ListRequest
    from rock_envs.sandbox.sdk.http import HttpSandboxAPI

    async def go() -> tuple[SandboxList, ManagerStats, PoolList]:
        api = HttpSandboxAPI.connect(url, token)
        try:
            return await api.list(ListRequest()), await api.stats(), await api.list_pools()
        finally:
            await api.aclose()

    listed, stats, pools = _run(go())
    # ids are what users copy into the next command: never wrapped or cut; the other cells fold
    id_width = max((len(sb.id) for sb in listed.sandboxes), default=2)
    table = Table(
        Column("id", no_wrap=True, min_width=id_width),
        *(Column(name, no_wrap=True) for name in ("status", "runtime")),
        Column("pool", overflow="fold"),
        Column("ttl", no_wrap=True),
        Column("isolation", overflow="fold"),
    )
    for sb in listed.sandboxes:
        table.add_row(sb.id, sb.status, sb.spec.runtime, sb.pool or "", str(sb.spec.ttl), ", ".join(sb.isolation))
    Console().print(table)
    typer.echo(
        f"{stats.starting} starting ({stats.waiting_to_start} in line, at most {stats.max_starting} at once), "
        f"{stats.running} running, {stats.pooled} pooled, {stats.dead} dead; since start: {stats.swept} "
        f"leaked then swept, {stats.lease_expired} leases lapsed, {stats.ttl_reaped} idle past their ttl"
    )
    for pool in pools.pools:
        typer.echo(
            f"pool {pool.name}: {pool.ready} ready, {pool.starting} starting, {pool.claimed} claimed "
            f"(size {pool.size}, max {pool.max_size or '-'}); {pool.claims} claims, {pool.misses} misses"
        )


@app.command("exec")
def exec_command(
    sandbox_id: str,
    command: list[str] = typer.Argument(..., help="The command (quote it, or put it after --)."),
    url: str = URL,
    token: Optional[str] = TOKEN,
    session: Optional[str] = typer.Option(None, help="Run in this session."),
    timeout: float = typer.Option(60.0, help="Seconds before the command is killed."),
) -> None:
    """Run a command; print its stdout and stderr; exit with its exit code."""

    async def go() -> int:
        sb = await _attach(sandbox_id, url, token)
        try:
            result = await sb.arun(" ".join(command), session=session, timeout=timeout)
        finally:
            await sb.detach()
        sys.stdout.write(result.output)
        sys.stderr.write(result.stderr)
        if result.timed_out:
            typer.echo(f"[timed out after {timeout} s]", err=True)
        return result.exit_code if result.exit_code is not None else 1

    raise typer.Exit(_run(go()) & 0xFF)


@app.command()
def shell(
    sandbox_id: str,
    url: str = URL,
    token: Optional[str] = TOKEN,
    session: str = typer.Option("shell", help="Session name (its state persists)."),
) -> None:
    """An interactive bash session: each line runs in one persistent session. Ctrl-D or `exit` leaves."""
    try:
        sb = SyncSandbox.attach(sandbox_id, SandboxConfig(base_url=url, token=token))
    except SandboxError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        try:
            sb.create_session(session)
        except SandboxError:
            pass  # the session exists already: keep using it
        while True:
            try:
                line = input(f"{sandbox_id}$ ")
            except (EOFError, KeyboardInterrupt):
                typer.echo()
                break
            if line.strip() in ("exit", "logout"):
                break
            if not line.strip():
                continue
            for event in sb.stream(line, session=session, timeout=3600):
                if hasattr(event, "stream"):
                    (sys.stdout if event.stream == "stdout" else sys.stderr).write(event.data)  # type: ignore[union-attr]
                    (sys.stdout if event.stream == "stdout" else sys.stderr).flush()
    finally:
        sb.detach()


@app.command()
def cp(src: str, dst: str, url: str = URL, token: Optional[str] = TOKEN) -> None:
    """Copy a file or directory: `cp local SANDBOX:path` or `cp SANDBOX:path local`."""
    if (":" in src) == (":" in dst):
        raise typer.BadParameter("exactly one of SRC and DST must be SANDBOX_ID:path")

    async def go() -> int:
        remote, local, upload = (dst, src, True) if ":" in dst else (src, dst, False)
        sid, _, path = remote.partition(":")
        sb = await _attach(sid, url, token)
        try:
            if upload:
                return (await sb.upload(local, path)).size
            try:
                return (await sb.download(path, local)).size
            except InvalidRequestError:  # a directory: copy it as a tree
                return (await sb.download_dir(path, local)).size
        finally:
            await sb.detach()

    typer.echo(f"{_run(go())} bytes")


@app.command("rm")
def remove(sandbox_ids: list[str], url: str = URL, token: Optional[str] = TOKEN) -> None:
    """Stop and remove sandboxes."""

    async def go() -> None:
        for sid in sandbox_ids:
            await (await _attach(sid, url, token)).stop()
            typer.echo(sid)

    _run(go())


snapshot_app = typer.Typer(help="Snapshots of sandboxes: take, list, remove.", no_args_is_help=True)
app.add_typer(snapshot_app, name="snapshot")


@snapshot_app.command("create")
def snapshot_create(
    sandbox_id: str,
    url: str = URL,
    token: Optional[str] = TOKEN,
    name: Optional[str] = typer.Option(None, help="A name to find it by."),
) -> None:
    """Snapshot a sandbox's files; print the snapshot's id."""

    async def go() -> str:
        sb = await _attach(sandbox_id, url, token)
        try:
            return (await sb.snapshot(name=name)).id
        finally:
            await sb.detach()

    typer.echo(_run(go()))


@snapshot_app.command("ls")
def snapshot_list(url: str = URL, token: Optional[str] = TOKEN) -> None:
    """List the server's snapshots."""
    from rich.console import Console
    from rich.table import Table

    snapshots = _run(Sandbox.list_snapshots(SandboxConfig(base_url=url, token=token)))
    table = Table("id", "name", "from sandbox", "runtime", "size", "image")
    for s in snapshots:
        table.add_row(s.id, s.name or "", s.sandbox_id, s.runtime, f"{s.size:,}", s.image or "")
    Console(soft_wrap=True).print(table)


@snapshot_app.command("rm")
def snapshot_remove(snapshot_ids: list[str], url: str = URL, token: Optional[str] = TOKEN) -> None:
    """Remove snapshots (sandboxes made from them go on)."""

    async def go() -> None:
        for snapshot_id in snapshot_ids:
            await Sandbox.delete_snapshot(snapshot_id, SandboxConfig(base_url=url, token=token))
            typer.echo(snapshot_id)

    _run(go())
