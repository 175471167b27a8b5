"""Proxy mode's HTTP/1.1 client for plain-``http`` upstreams (a vLLM or SGLang server on the cluster):
kept-alive connections per upstream, each request sent in one write, responses parsed by httptools.

Why not httpx here: per proxied call it cost about as much server CPU as all the rest of the call
(py-spy on ``benchmarks.model_service``): the request head and body in two writes, anyio cancel
scopes around every read and write, a pool that scans its connections per request. ``https``
upstreams, and ``http`` ones an ``HTTP_PROXY`` applies to, still go through httpx (``proxy.py``).

Errors: ``asyncio.TimeoutError`` when the upstream is silent for ``timeout`` seconds (connecting,
or between two reads); :class:`UpstreamBroken` (a ``ConnectionError``) when it cannot be reached or
the connection breaks. A kept-alive connection the upstream closed while idle is replaced once,
silently, before any byte of the answer came.
"""

from __future__ import annotations

import asyncio
import collections
import urllib.request
from typing import AsyncIterator
from urllib.parse import urlsplit

import httptools

MAX_IDLE = 512
"""Kept-alive connections per upstream (more at once are opened, then closed after their call)."""
READ = 65536


class UpstreamBroken(ConnectionError):
    pass


def is_direct(url: str) -> bool:
    """True for a plain-http URL no ``HTTP_PROXY`` applies to (this client's; else httpx's)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    return "http" not in urllib.request.getproxies() or bool(urllib.request.proxy_bypass(parts.hostname or ""))


class _Parsed:
    """httptools' callbacks: the status, headers and body chunks of one response."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.chunks: collections.deque[bytes] = collections.deque()
        self.headers_done = self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(bytes(body))

    def on_message_complete(self) -> None:
        self.done = True


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()


class UpstreamResponse:
    """One answer: ``status_code`` and ``headers`` at once; the body with ``aread()`` or ``aiter_raw()``
    (transfer encoding undone); ``aclose()`` gives a finished connection back to its pool."""

    def __init__(self, pool: UpstreamPool, key: tuple[str, int], conn: _Connection, timeout: float):
        self.pool, self.key, self.conn, self.timeout = pool, key, conn, timeout
        self.parsed = _Parsed()
        self.parser = httptools.HttpResponseParser(self.parsed)
        self.status_code = 0
        self.headers = self.parsed.headers
        self.got_bytes = False
        self.closed = False
        self.reusable = False

    async def _more(self) -> None:
        data = await asyncio.wait_for(self.conn.reader.read(READ), self.timeout)
        if not data:
            p = self.parsed
            if (
                p.headers_done
                and "content-length" not in p.headers
                and "chunked" not in p.headers.get("transfer-encoding", "")
            ):
                p.done = True  # a body that ends with the connection
                self.reusable = False
                return
            raise UpstreamBroken("the upstream closed the connection before its answer ended")
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise UpstreamBroken(f"the upstream's answer is not valid HTTP/1.1 ({exc})") from exc

    async def start(self) -> None:
        while not self.parsed.headers_done:
            await self._more()
        self.status_code = self.parser.get_status_code()
        # From the head, not parser.should_keep_alive(): httptools forgets it once the message completes.
        connection = self.headers.get("connection", "").lower()
        if self.parser.get_http_version() == "1.1":
            self.reusable = "close" not in connection
        else:
            self.reusable = "keep-alive" in connection

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        chunks = self.parsed.chunks
        while True:
            while chunks:
                yield chunks.popleft()
            if self.parsed.done:
                break
            await self._more()
        await self.aclose()

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_raw()])

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.parsed.done and self.reusable:
            self.pool.give_back(self.key, self.conn)
        else:
            self.conn.close()


class UpstreamPool:
    def __init__(self, max_idle: int = MAX_IDLE):
        self.max_idle = max_idle
        self.idle: dict[tuple[str, int], collections.deque[_Connection]] = {}

    def give_back(self, key: tuple[str, int], conn: _Connection) -> None:
        idle = self.idle.setdefault(key, collections.deque())
        if len(idle) < self.max_idle and not conn.writer.is_closing():
            idle.append(conn)
        else:
            conn.close()

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> UpstreamResponse:
        parts = urlsplit(url)
        key = (parts.hostname or "127.0.0.1", parts.port or 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1", f"host: {parts.netloc}", f"content-length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        message = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        idle = self.idle.get(key)
        while True:
            reused = bool(idle)
            conn = idle.popleft() if idle else await self._connect(key, timeout)
            response = UpstreamResponse(self, key, conn, timeout)
            try:
                conn.writer.write(message)  # head and body in one write
                await conn.writer.drain()
                await response.start()
                return response
            except TimeoutError:  # an OSError too, since Python 3.11: not a broken connection
                conn.close()
                raise
            except (OSError, asyncio.IncompleteReadError) as exc:
                conn.close()
                if reused and not response.got_bytes:
                    continue  # it was closed while idle (uvicorn closes after 5 s): the next one, or a new one
                if isinstance(exc, UpstreamBroken):
                    raise
                raise UpstreamBroken(f"{type(exc).__name__}: {exc}") from exc
            except BaseException:
                conn.close()
                raise

    async def _connect(self, key: tuple[str, int], timeout: float) -> _Connection:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*key, limit=READ), timeout)
        except TimeoutError:
            raise
        except OSError as exc:
            raise UpstreamBroken(f"{type(exc).__name__}: {exc}") from exc
        return _Connection(reader, writer)

    def close(self) -> None:
        for idle in self.idle.values():
            for conn in idle:
                conn.close()
        self.idle = {}
