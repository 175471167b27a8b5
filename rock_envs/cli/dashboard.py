"""`rock-envs dashboard`: open a server's live page (``GET /dashboard``) in the browser."""

from __future__ import annotations

import webbrowser

import typer


def dashboard(
    url: str = typer.Option("http://127.0.0.1:8080", "--url", envvar="ROCK_ENVS_URL", help="The server's base URL."),
    open_browser: bool = typer.Option(True, "--open/--no-open", help="Open it in the default browser."),
) -> None:
    """Print (and open) the dashboard of the server at --url. The page asks for the token once and keeps
    it in the browser; it is never put in the URL."""
    import httpx

    base = url.rstrip("/")
    try:
        healthy = httpx.get(base + "/health", timeout=5).status_code == 200
    except httpx.TransportError:
        healthy = False
    if not healthy:
        typer.echo(
            f"error: `rock-envs dashboard`: no rock-envs server answers at {base}; start one with "
            "`rock-envs serve` (or pass --url).",
            err=True,
        )
        raise typer.Exit(2)
    page = base + "/dashboard"
    typer.echo(f"{page}  (sign in with the token `rock-envs serve` printed; it is also in its token file)")
    if open_browser:
        webbrowser.open(page)
