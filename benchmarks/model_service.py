"""The ModelService: call round trips through `rock-envs serve` in trainer and proxy mode, for each
dialect, beside direct calls to the same local upstream in the same run. Loopback only.

    python -m benchmarks.model_service [--calls 200] [--wide-calls 2048]

The upstream is a minimal OpenAI- and Anthropic-compatible app on uvicorn in its own process, with
canned answers. Agents are asyncio tasks in this process, each on its own kept-alive connection,
calling the server's `/v1/*` routes with a sandbox's key (the path a sandbox's tunnel ends in, without the in-sandbox hop); the
trainer answering trainer-mode calls runs in this process too, over HTTP (`ModelService.next_calls`
and `respond`). Rows: each mode and dialect at 1 and 256 concurrent agents: p50 and p99 of a call's
round trip, calls per second, the p50 over a direct call to the upstream at the same concurrency,
and the server process's CPU time per call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx

from benchmarks import print_table
from benchmarks.sandbox import start_server

BODIES: dict[str, dict[str, Any]] = {
    "chat": {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
    "responses": {"model": "m", "input": "hi"},
    "messages": {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
}
PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses", "messages": "/v1/messages"}
CANNED = {
    "/v1/chat/completions": {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    },
    "/v1/responses": {
        "id": "r",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": "m",
        "output": [
            {
                "type": "message",
                "id": "m",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "ok", "annotations": []}],
            }
        ],
    },
    "/v1/messages": {
        "id": "msg",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    },
}


async def upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The canned upstream (ASGI): reads the body, answers the path's canned JSON."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = json.dumps(CANNED.get(scope["path"], CANNED["/v1/chat/completions"])).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_upstream() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "benchmarks.model_service", "--serve-upstream", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.post(url + "/v1/chat/completions", json={}, timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return proc, url


class Agent:
    """One agent's kept-alive HTTP/1.1 connection, written by hand: httpx's own per-request cost
    (a few hundred calls/s at 256 connections here) would hide the server's."""

    def __init__(self, url: str, key: str):
        self.host, _, port = url.removeprefix("http://").partition(":")
        self.port, self.key = int(port), key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\nauthorization: Bearer {self.key}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        if "content-length" in headers:
            return status, await self.reader.readexactly(int(headers["content-length"]))
        data = b""
        while True:  # chunked
            size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            data += (await self.reader.readexactly(size + 2))[:size]
            if size == 0:
                return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def load(url: str, key: str, dialect: str, calls: int, agents: int) -> tuple[list[float], float]:
    """`calls` calls from `agents` concurrent agents: (each call's seconds, wall seconds)."""
    body, times, left = json.dumps(BODIES[dialect]).encode(), [], [calls]
    pool = [Agent(url, key) for _ in range(agents)]

    async def agent(conn: Agent) -> None:
        while left[0] > 0:
            left[0] -= 1
            t0 = time.perf_counter()
            status, data = await conn.post(PATHS[dialect], body)
            times.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"{dialect} call answered {status}: {data[:300]!r}")

    await asyncio.gather(*(conn.post("/v1/models", b"") for conn in pool), return_exceptions=True)  # connect
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(agent(conn) for conn in pool))
    finally:
        for conn in pool:
            conn.close()
    return times, time.perf_counter() - t0


async def trainer(url: str, token: str, stop: asyncio.Event) -> None:
    from rock_envs.sandbox.model_service import ModelService

    async with ModelService(base_url=url, token=token) as service:
        while not stop.is_set():
            batch = await service.next_calls(max_calls=512, timeout=0.2)
            await asyncio.gather(*(call.respond("ok") for call in batch))  # the SDK sends them together


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(
    url: str, token: str, upstream: str, calls: int, wide_calls: int, server_pid: int
) -> list[tuple[str, ...]]:
    from rock_envs.sandbox import Sandbox, SandboxConfig

    rows: list[tuple[str, ...]] = []
    common = {"max_pending": 4096, "timeout": 120}
    proxy_spec = {"mode": "proxy", "upstream_url": upstream + "/v1", **common}
    async with (
        Sandbox(SandboxConfig(base_url=url, token=token, model_service={"mode": "trainer", **common})) as trained,
        Sandbox(SandboxConfig(base_url=url, token=token, model_service=proxy_spec)) as proxied,
    ):
        keys = {"direct": "-"}
        for name, sb in (("trainer", trained), ("proxy", proxied)):
            keys[name] = (await sb.arun("printenv OPENAI_API_KEY")).output.strip()
        stop = asyncio.Event()
        answering = asyncio.ensure_future(trainer(url, token, stop))
        try:
            for agents, n in ((1, calls), (256, wide_calls)):
                direct: dict[str, float] = {}
                for where, base in (("direct to upstream", upstream), ("proxy", url), ("trainer", url)):
                    for dialect in BODIES:
                        key = keys[where.split()[0]]
                        await load(base, key, dialect, min(n, 256), agents)  # warm
                        cpu = cpu_seconds(server_pid)
                        times, wall = await load(base, key, dialect, n, agents)
                        cpu = cpu_seconds(server_pid) - cpu
                        times.sort()
                        p50, p99 = statistics.median(times), times[max(0, int(len(times) * 0.99) - 1)]
                        direct.setdefault(dialect, p50)
                        over = "" if where.startswith("direct") else f"{(p50 - direct[dialect]) * 1e3:+.2f} ms"
                        rows.append(
                            (
                                f"{where}, {dialect}",
                                str(agents),
                                f"{p50 * 1e3:.2f} ms",
                                f"{p99 * 1e3:.2f} ms",
                                f"{n / wall:.0f}",
                                f"{direct[dialect] * 1e3:.2f} ms",
                                over,
                                "" if where.startswith("direct") else f"{cpu / n * 1e3:.2f} ms",
                            )
                        )
        finally:
            stop.set()
            await answering
    return rows


def main(calls: int, wide_calls: int) -> None:
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    workdir = tempfile.mkdtemp(prefix="re-bench-", dir="/tmp")
    up, upstream = start_upstream()
    proc, url, token = start_server(os.path.join(workdir, "srv"))
    try:
        rows = asyncio.run(run(url, token, upstream, calls, wide_calls, proc.pid))
    finally:
        for p in (proc, up):
            p.terminate()
            p.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)
    head = ("what", "agents", "p50", "p99", "calls/s", "direct p50", "p50 over direct", "server CPU/call")
    print_table(head, rows)
    print(
        "targets: proxy p50 over direct <= 2 ms; >= 1,000 calls/s at 256 agents on 2 cores. Server CPU/call is "
        "the server process's CPU seconds over the row's calls (trainer mode: with the trainer's requests), "
        "steadier than wall times on a loaded machine."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="calls per row at 1 agent")
    parser.add_argument("--wide-calls", type=int, default=2048, help="calls per row at 256 agents")
    parser.add_argument("--serve-upstream", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        import uvicorn

        uvicorn.run(upstream_app, host="127.0.0.1", port=args.serve_upstream, log_level="error", access_log=False)
    else:
        main(args.calls, args.wide_calls)
