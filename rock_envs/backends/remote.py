"""The remote backend: EnvWorkers in sandboxes behind a rock-envs sandbox server, over one WebSocket.

``make_vec(env_id, n, backend="remote", url="http://host:8080", token=..., runtime="process",
envs_per_sandbox=...)`` creates one sandbox per worker on the server (``POST /sandboxes``), starts
one EnvWorker in each and reaches all of them through the server's ``/workers`` WebSocket: one
connection for the whole vector env, one channel per worker, frames exactly as the subprocess
backend sends them (the server routes them and never decodes one).

Threads: the WebSocket lives on a private asyncio loop thread. ``send`` pickles in the caller's
thread, queues the frame and wakes the loop once per burst; the loop writes every queued frame.
Replies go from the socket reader straight into a ``queue.SimpleQueue`` that ``wait`` blocks on, and
are unpickled in the caller's thread. No per-channel queues, no per-frame task.

Faults (the engine turns each ``WorkerGone`` into a rebuild of that worker's envs, re-seeded with
their last seeds and flagged ``worker_restarted`` in info):

| fault                                   | what happens                                              |
|-----------------------------------------|-----------------------------------------------------------|
| the worker process dies                 | its channel closes: ``WorkerGone``; ``restart`` opens a new worker in the same sandbox |
| the sandbox is deleted, reaped or dies  | ``WorkerGone``; ``restart`` finds it gone and creates a new sandbox |
| the WebSocket drops                     | every worker is ``WorkerGone``; ``restart`` reconnects and reuses the sandboxes still there |
| the server restarts (same url)          | as a drop; sandboxes died with the old server, so new ones are created |
| the server stays away                   | ``restart`` retries for ``reconnect_timeout`` seconds, then raises ``RemoteBackendError`` |

A split server (``url`` its control plane, ``data_urls`` its replicas): sandboxes are made and removed
on ``url``; each worker's frames go over the WebSocket of one replica, its sandbox's own by
rendezvous hashing of the sandbox id. A replica killed is as a dropped connection for its workers:
``restart`` reopens them in the same sandboxes through the next replica (one that cannot be reached is
passed over for a few seconds), so the vector env goes on with the rest.

While a channel is open the server never reaps its sandbox; ``ttl`` only counts once the client is
gone (it crashed, or lost its connection), so an abandoned vector env frees the server by itself.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from typing import Any, Coroutine, TypeVar

from rock_envs.backends.base import WorkerGone, WorkerGroup
from rock_envs.backends.options import RemoteOptions
from rock_envs.core.errors import RemoteBackendError
from rock_envs.core.loop_thread import LoopThread
from rock_envs.worker.protocol import Make, Reply, Request, decode, encode

T = TypeVar("T")
STARTUP_TIMEOUT = 120.0
REPLICA_SKIP = 5.0  # seconds a data replica that could not be reached is passed over
_GONE = object()


class RemoteGroup(WorkerGroup):
    name = "remote"

    def __init__(self, num_workers: int, options: RemoteOptions):
        from rock_envs.sandbox.config import SandboxConfig
        from rock_envs.sandbox.model_service.upstreams import UpstreamRouter

        super().__init__(num_workers)
        self.options = options
        assert options.url is not None  # RemoteOptions checks it
        self.url = options.url.rstrip("/")
        self.data_urls = [u.rstrip("/") for u in options.data_urls or [self.url]]
        self.token = SandboxConfig(base_url=self.url, token=options.token).resolve_token()
        self.headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.spec = options.sandbox_spec()
        self.reconnect_timeout = options.reconnect_timeout
        self._envs: list[int] = [0] * num_workers  # declared to the server (its env caps count these)
        self._sandboxes: list[str | None] = [None] * num_workers
        self._channels: list[Any] = [None] * num_workers
        self._gen = [0] * num_workers
        self._held: list[list[bytes]] = [[] for _ in range(num_workers)]
        self._opening = [False] * num_workers
        self._lock = threading.Lock()
        self._open_tasks: set[asyncio.Task[Any]] = set()
        self._connecting: dict[str, asyncio.Lock] = {}
        self._muxes: dict[str, Any] = {}  # by data URL
        self._replicas = UpstreamRouter(skip_for=REPLICA_SKIP)
        self._replies: queue.SimpleQueue = queue.SimpleQueue()
        self._outbox: deque[tuple[Any, bytes]] = deque()
        self._wake_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: LoopThread | None = None
        self._http: Any = None

    # ---- the loop thread --------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        assert self._thread is not None
        return self._thread.run(coro, timeout)

    def start(self) -> None:
        """Start the loop thread and connect; each worker's sandbox is made when its first `Make` is sent
        (then the server knows how many envs it will host, for its caps), all of them at once."""
        from rock_envs.sandbox.sdk.server_client import ServerClient

        self._thread = LoopThread("rock-envs-remote")
        self._loop = self._thread.loop
        self._wake = asyncio.Event()
        self._http = ServerClient(self.url, self.token, timeout=STARTUP_TIMEOUT, max_connections=32)
        self._sender = asyncio.run_coroutine_threadsafe(self._send_loop(), self._loop)
        try:
            self._run(self._connect(""))
        except BaseException:
            self.close()
            raise

    @property
    def _mux(self) -> Any:
        """The first data URL's connection (the only one against a single server)."""
        return self._muxes.get(self.data_urls[0])

    async def _connect(self, sandbox_id: str) -> Any:
        """The mux of the sandbox's data URL (the next one while that is away), retried for
        `reconnect_timeout` seconds while none can be reached."""
        from rock_envs.sandbox.errors import AuthenticationError, SandboxError

        deadline = time.monotonic() + self.reconnect_timeout
        while True:
            for url in self._replicas.order(self.data_urls, sandbox_id):
                try:
                    return await self._connected(url)
                except AuthenticationError as exc:
                    raise RemoteBackendError(f"`make_vec(backend='remote')`: {exc}") from exc
                except SandboxError as exc:
                    self._replicas.failed(url)
                    failure = exc
            if time.monotonic() > deadline:
                where = (
                    self.url if self.data_urls == [self.url] else f"every data replica ({', '.join(self.data_urls)})"
                )
                raise RemoteBackendError(
                    f"`make_vec(backend='remote')`: the server at {where} is unreachable "
                    f"for {self.reconnect_timeout:.0f} s ({failure}); start it (`rock-envs serve`) "
                    "and make a new vector env."
                ) from failure
            await asyncio.sleep(0.2)

    async def _connected(self, url: str) -> Any:
        """The connection to `url`, opened again if it dropped; workers reopening at once share one."""
        from rock_envs.sandbox.sdk.mux import WorkerMux

        async with self._connecting.setdefault(url, asyncio.Lock()):
            mux = self._muxes.get(url)
            if mux is not None and mux.connected:
                return mux
            if mux is not None:
                try:
                    await asyncio.wait_for(mux.close(), 5)
                except Exception:  # noqa: BLE001 - it is dead either way
                    pass
            mux = WorkerMux(url, self.headers)
            await mux.connect()
            self._muxes[url] = mux
            self._replicas.worked(url)
            return mux

    async def _http_call(self, method: str, path: str, call: str, json: Any = None) -> Any:
        from rock_envs.sandbox.errors import ServerUnreachableError

        deadline = time.monotonic() + self.reconnect_timeout
        while True:
            try:
                return (await self._http.send(method, path, call, body=json, timeout=STARTUP_TIMEOUT)).json()
            except ServerUnreachableError as exc:
                if time.monotonic() > deadline:
                    raise RemoteBackendError(str(exc)) from exc
                await asyncio.sleep(0.2)

    async def _create(self, w: int) -> str:
        labels = {**self.spec.labels, "envs": str(self._envs[w] or 0)}
        body = {**self.spec.model_dump(exclude_unset=True), "labels": labels}
        info = await self._http_call("POST", "/sandboxes", "make_vec(backend='remote')", body)
        return str(info["id"])

    async def _delete(self, sid: str) -> None:
        from rock_envs.sandbox.errors import SandboxNotFoundError

        try:
            await self._http_call("DELETE", f"/sandboxes/{sid}", "close")
        except SandboxNotFoundError:
            pass

    async def _open(self, w: int, fresh: bool) -> Any:
        """Open worker `w`: in its sandbox if that still answers (unless `fresh`), else in a new one."""
        from rock_envs.sandbox.errors import SandboxDiedError, SandboxNotFoundError

        sid = self._sandboxes[w]
        if sid is not None and not fresh:
            try:
                return self._attached(w, await self._open_in(w, sid))
            except (SandboxNotFoundError, SandboxDiedError):
                await self._delete(sid)  # dead or reaped: replace it
                self._sandboxes[w] = None
        sid = self._sandboxes[w] = await self._create(w)
        return self._attached(w, await self._open_in(w, sid))

    async def _open_in(self, w: int, sid: str) -> Any:
        """Worker `w` in sandbox `sid`, over its data URL's connection; if that connection drops while
        the worker opens (a replica killed), over the next one's."""
        from websockets.exceptions import ConnectionClosed

        from rock_envs.sandbox.errors import SandboxDiedError
        from rock_envs.sandbox.models import WORKER_ARGV

        for _ in range(len(self.data_urls)):
            mux = await self._connect(sid)
            try:
                return await mux.open(sid, list(WORKER_ARGV), None, STARTUP_TIMEOUT, self._deliver_to(w))
            except (ConnectionClosed, SandboxDiedError):
                if mux.connected:
                    raise  # the sandbox's own failure, not the connection's
                self._replicas.failed(next(u for u, m in self._muxes.items() if m is mux))
        return await (await self._connect(sid)).open(sid, list(WORKER_ARGV), None, STARTUP_TIMEOUT, self._deliver_to(w))

    def _deliver_to(self, w: int) -> Any:
        """Worker `w`'s frames straight into the group's reply queue, tagged with the channel's generation."""
        gen, replies = self._gen[w], self._replies
        return lambda frame: replies.put((w, gen, _GONE if frame is None else frame))

    def _attached(self, w: int, channel: Any) -> Any:
        self._gone[w] = False
        return channel

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._wake_pending = False
            while self._outbox:
                mux, frame = self._outbox.popleft()
                try:
                    await mux.ws().send(frame)
                except Exception:  # noqa: BLE001 - a dead connection: its reader reports every channel gone
                    pass

    # ---- the transport ------------------------------------------------------------------------

    def send(self, w: int, request: Request) -> None:
        channel = self._channels[w]
        if channel is None:
            return self._send_cold(w, request)
        if self._gone[w]:
            return  # its death was (or will be) reported by wait(); the engine restarts it
        self._outbox.append((channel.mux, channel.prefix + encode(request)))
        if not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon_threadsafe(self._wake.set)  # type: ignore[union-attr]

    def _send_cold(self, w: int, request: Request) -> None:
        """Worker `w` has no channel yet: hold the frame; its first `Make` opens the worker."""
        with self._lock:
            channel = self._channels[w]
            if channel is None:
                self._held[w].append(encode(request))
                if not self._opening[w] and isinstance(request, Make):
                    self._opening[w] = True
                    self._envs[w] = len(request.env_ids)
                    asyncio.run_coroutine_threadsafe(self._open_and_flush(w), self._loop)  # type: ignore[arg-type]
                return
        self.send(w, request)

    async def _open_and_flush(self, w: int) -> None:
        gen = self._gen[w]
        task = asyncio.current_task()
        self._open_tasks.add(task)  # type: ignore[arg-type]
        task.add_done_callback(self._open_tasks.discard)  # type: ignore[union-attr]
        try:
            channel = await self._open(w, fresh=self._sandboxes[w] is None)
        except Exception as exc:  # noqa: BLE001 - raised from the caller's wait()
            self._replies.put((w, gen, exc))
            with self._lock:
                self._opening[w] = False
                self._held[w] = []
            return
        with self._lock:
            for payload in self._held[w]:
                self._outbox.append((channel.mux, channel.prefix + payload))
            self._held[w] = []
            self._channels[w] = channel
            self._opening[w] = False
        self._wake_pending = True
        self._wake.set()

    def wait(self, timeout: float | None) -> list[tuple[int, Reply | WorkerGone]]:
        try:
            items = [
                self._replies.get(timeout=timeout) if timeout is None or timeout > 0 else self._replies.get_nowait()
            ]
        except queue.Empty:
            return []
        try:
            while True:
                items.append(self._replies.get_nowait())
        except queue.Empty:
            pass
        out: list[tuple[int, Reply | WorkerGone]] = []
        for w, gen, item in items:
            if gen != self._gen[w] or self._gone[w]:
                continue  # from a channel that was replaced
            if isinstance(item, BaseException):
                self._gone[w] = True
                raise item  # the server refused (a cap, the token) or stayed away: nothing to retry
            if isinstance(item, bytes):
                out.append((w, decode(item)))  # type: ignore[arg-type]
            else:
                self._gone[w] = True
                reason = getattr(self._channels[w], "closed_reason", None) or "its channel closed"
                out.append(
                    (w, WorkerGone(f"the worker in sandbox {self._sandboxes[w]} on {self.url} went away ({reason})"))
                )
        return out

    def on_built(self, w: int, env_ids: list[int], built: Any) -> None:
        self._envs[w] = len(env_ids)

    def restart(self, w: int) -> None:
        """Forget worker `w`'s channel; the engine's next `Make` opens a new worker (see `_open`)."""
        with self._lock:
            channel, self._channels[w] = self._channels[w], None
            self._gen[w] += 1
            self._gone[w] = False
            self._held[w] = []
            self._opening[w] = False
        if channel is not None and channel.closed_reason is None:
            self._run(self._close_channel(channel))

    async def _close_channel(self, channel: Any) -> None:
        try:
            await asyncio.wait_for(channel.aclose(), 5)
        except Exception:  # noqa: BLE001 - the connection may be gone already
            pass

    def kill(self, w: int) -> None:
        """Delete worker `w`'s sandbox on the server (its agent and worker are killed at once)."""
        sid = self._sandboxes[w]
        if sid is not None:
            self._run(self._delete(sid), timeout=60)

    def _close(self) -> None:
        if self._loop is None:
            return
        try:
            self._run(self._close_all(), timeout=120)
        except Exception:  # noqa: BLE001 - the server is gone: its sandboxes died with it or expire by TTL
            pass
        try:
            self._run(self._cancel_rest(), timeout=10)
        except Exception:  # noqa: BLE001
            pass
        assert self._thread is not None
        self._thread.close()
        self._loop = None

    async def _cancel_rest(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close_all(self) -> None:
        self._sender.cancel()
        self.reconnect_timeout = min(self.reconnect_timeout, 5.0)
        if self._open_tasks:  # let sandboxes being made get their ids, so they are deleted below
            await asyncio.wait(list(self._open_tasks), timeout=STARTUP_TIMEOUT)
        for mux in list(self._muxes.values()):
            await mux.close()  # ends every worker at once
        sids = [sid for sid in self._sandboxes if sid is not None]
        self._sandboxes = [None] * self.num_workers
        await asyncio.gather(*(self._delete(sid) for sid in sids), return_exceptions=True)
        await self._http.aclose()

    # ---- facts --------------------------------------------------------------------------------

    def sandbox_ids(self) -> list[str | None]:
        return list(self._sandboxes)

    def describe(self, w: int) -> dict[str, Any]:
        return {"sandbox": self._sandboxes[w], "server": self.url}


__all__ = ["RemoteBackendError", "RemoteGroup"]
