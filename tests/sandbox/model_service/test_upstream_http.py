"""Proxy mode's own HTTP/1.1 client against real TCP upstreams on 127.0.0.1 that misbehave on purpose:
kept-alive reuse, a connection closed while idle, a silent upstream, an answer cut short."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from rock_envs.sandbox.model_service.upstream_http import UpstreamBroken, UpstreamPool, is_direct

pytestmark = pytest.mark.anyio
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serving(handler: Handler) -> Any:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    size = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    return await reader.readexactly(size)


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    p = UpstreamPool()
    yield p
    p.close()


async def test_a_kept_alive_connection_is_reused_and_one_closed_while_idle_replaced(pool: UpstreamPool) -> None:
    accepted = []

    async def answer_twice_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        for _ in range(2):
            body = await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body))
            writer.write(body)  # an echo
            await writer.drain()
        writer.close()  # as an upstream closing an idle kept-alive connection

    server, url = await serving(answer_twice_then_close)
    async with server:
        for k in range(3):
            response = await pool.post(url, b'{"n": %d}' % k, {"content-type": "application/json"}, timeout=10)
            assert response.status_code == 200 and response.headers["content-type"] == "application/json"
            assert await response.aread() == b'{"n": %d}' % k
        assert len(accepted) == 2  # calls 0 and 1 on one connection; call 2 found it closed and made a new one


async def test_a_silent_upstream_times_out_and_a_cut_answer_is_broken(pool: UpstreamPool) -> None:
    async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    async def cuts_its_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"6\r\ndata: \r\n")
        await writer.drain()
        writer.close()  # before the last chunk

    silent, silent_url = await serving(never_answers)
    async with silent:
        with pytest.raises(TimeoutError):
            await pool.post(silent_url, b"{}", {}, timeout=0.5)
    cut, cut_url = await serving(cuts_its_stream)
    async with cut:
        response = await pool.post(cut_url, b"{}", {}, timeout=10)
        got = []
        with pytest.raises(UpstreamBroken, match="before its answer ended"):
            async for chunk in response.aiter_raw():
                got.append(chunk)
        assert got == [b"data: "]
        await response.aclose()
    with pytest.raises(UpstreamBroken):  # nobody listens there any more
        await pool.post(cut_url, b"{}", {}, timeout=10)


def test_https_and_proxied_upstreams_are_left_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_direct("http://127.0.0.1:8000/v1")
    assert not is_direct("https://api.example.com/v1")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:3128")
    monkeypatch.setenv("no_proxy", "localhost")
    assert not is_direct("http://10.1.2.3:8000/v1") and is_direct("http://localhost:8000/v1")
