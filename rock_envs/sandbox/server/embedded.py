"""`serve_dashboard`: the dashboard (and the whole server API) of this event loop's embedded manager.

    async with Sandbox(SandboxConfig()) as sb:                 # embedded: no server
        board = await serve_dashboard()                         # http://127.0.0.1:<port>/dashboard
        print(board.url, board.token)                           # sign in with the token
        ...
        await board.aclose()                                    # the sandboxes go on

It runs uvicorn in the caller's event loop (the manager's asyncio objects belong to it), holds a
handle on the shared manager (so the manager outlives the last `Sandbox` while the page is up),
and never closes the manager itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import webbrowser
from dataclasses import dataclass
from typing import Any, Iterator

from ..errors import SandboxStartError
from ..local import LocalSandboxAPI


@dataclass
class EmbeddedDashboard:
    url: str
    """The page: ``http://host:port/dashboard``."""
    token: str
    """What the page's sign-in asks for (generated unless given)."""
    _server: Any
    _task: asyncio.Task[None]
    _api: LocalSandboxAPI | None

    async def aclose(self) -> None:
        """Stop serving; the embedded sandboxes go on. Safe to call twice."""
        self._server.should_exit = True
        await asyncio.gather(self._task, return_exceptions=True)
        if self._api is not None:
            api, self._api = self._api, None
            await api.aclose()


async def serve_dashboard(
    runtime_dir: str | None = None,
    port: int = 0,
    host: str = "127.0.0.1",
    token: str | None = None,
    open_browser: bool = False,
) -> EmbeddedDashboard:
    """Serve the embedded manager of ``runtime_dir`` (the one `Sandbox(SandboxConfig(runtime_dir=...))`
    uses in this event loop) at ``http://host:port/dashboard``; ``port=0`` picks a free one."""
    import uvicorn

    from .app import create_app

    api = LocalSandboxAPI.shared(runtime_dir)
    token = token or secrets.token_urlsafe(24)
    app = create_app(token=token, manager=api.manager, own_manager=False)

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # Ctrl-C stays the caller's, not the page's
            yield

    server = Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            await api.aclose()
            raise SandboxStartError(
                f"`serve_dashboard`: uvicorn could not serve on {host}:{port} ({task.exception()!r}); "
                "pick another port, or port=0 for a free one."
            )
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    board = EmbeddedDashboard(f"http://{host}:{bound}/dashboard", token, server, task, api)
    if open_browser:
        webbrowser.open(board.url)
    return board
