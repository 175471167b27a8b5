"""Sandbox speed: create-to-ready latency, session round trip, file transfer. Loopback only.

    python -m benchmarks.sandbox [--n 200] [--mb 200]

Prints one table. Targets (issue 4): process-runtime create p50 <= 50 ms; `echo hi` session round
trip p50 <= 3 ms through the server. The comparison column is a pexpect-style session's floor (the
default 50 ms delay before and after each send, as SWE-ReX uses), as a ratio; and for the metrics
row (issue 18), round trips through a server serving /metrics (scraped every second) against one
started with `--no-metrics`, rounds alternating, as on/off throughput (target >= 0.95).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import httpx

from benchmarks import print_table
from benchmarks.scraper import scraping
from rock_envs.sandbox import Sandbox, SandboxConfig
from rock_envs.sandbox.manager import SandboxManager
from rock_envs.sandbox.models import SandboxSpec


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1e3


async def create_latency(manager: SandboxManager, concurrent: int, rounds: int) -> list[float]:
    times: list[float] = []
    for _ in range(rounds):

        async def one() -> tuple[float, str]:
            t0 = time.perf_counter()
            info = await manager.create(SandboxSpec())
            return time.perf_counter() - t0, info.id

        results = await asyncio.gather(*(one() for _ in range(concurrent)))
        times += [t for t, _ in results]
        await asyncio.gather(*(manager.delete(sid) for _, sid in results))
    return times


async def round_trips(config: SandboxConfig, n: int) -> list[float]:
    async with Sandbox(config) as sb:
        await sb.create_session("s")
        for _ in range(20):
            await sb.arun("echo hi", session="s")
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            await sb.arun("echo hi", session="s")
            times.append(time.perf_counter() - t0)
        return times


async def transfer(config: SandboxConfig, mb: int, workdir: str) -> tuple[float, float]:
    src = os.path.join(workdir, "up.bin")
    with open(src, "wb") as fh:
        for _ in range(mb):
            fh.write(os.urandom(1 << 20))
    async with Sandbox(config) as sb:
        t0 = time.perf_counter()
        await sb.upload(src, "big.bin")
        up = mb / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        await sb.download("big.bin", os.path.join(workdir, "down.bin"))
        down = mb / (time.perf_counter() - t0)
    return up, down


def start_server(runtime_dir: str, extra: list[str] | None = None) -> tuple[subprocess.Popen[bytes], str, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = os.urandom(12).hex()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rock_envs.sandbox.server",
            "--port",
            str(port),
            "--token",
            token,
            "--runtime-dir",
            runtime_dir,
            *(extra or []),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(url + "/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return proc, url, token


async def metrics_cost(workdir: str, n: int, rounds: int = 10) -> tuple[str, str, str, str]:
    """`echo hi` round trips on two fresh servers side by side: one serving /metrics (scraped every
    second), one started with `--no-metrics`; rounds alternate which goes first. Each side keeps its
    best round's median (noise from other work on the machine only slows), so the ratio compares
    like with like."""
    servers = {
        "on": start_server(os.path.join(workdir, "on")),
        "off": start_server(os.path.join(workdir, "off"), ["--no-metrics"]),
    }
    stop = threading.Event()
    _, on_url, on_token = servers["on"]
    scraper = scraping([(on_url + "/metrics", {"Authorization": f"Bearer {on_token}"})], stop)
    best = {side: float("inf") for side in servers}
    times: dict[str, list[float]] = {side: [] for side in servers}
    try:
        for r in range(rounds):
            for side in ("on", "off") if r % 2 == 0 else ("off", "on"):
                _, url, token = servers[side]
                got = await round_trips(SandboxConfig(base_url=url, token=token), max(50, n // 4))
                best[side] = min(best[side], statistics.median(got))
                times[side] += got
    finally:
        stop.set()
        scraper.join(timeout=10)
        for proc, _, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    return (
        "`echo hi` round trip through the server, metrics on (scraped 1/s)",
        f"{best['on'] * 1e3:.2f} ms",
        f"{pct(times['on'], 0.99):.2f} ms",
        f"{best['off'] / best['on']:.3f} of metrics off (off: p50 {best['off'] * 1e3:.2f} ms, "
        f"p99 {pct(times['off'], 0.99):.2f} ms; best round of {rounds})",
    )


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def main(n: int, mb: int) -> None:
    workdir = tempfile.mkdtemp(prefix="re-bench-", dir="/tmp")
    proc, url, token = start_server(os.path.join(workdir, "srv"))
    rows: list[tuple[str, str, str, str]] = []
    try:
        manager = SandboxManager(runtime_dir=os.path.join(workdir, "emb"))
        await manager.start()
        await create_latency(manager, 1, 2)  # warm the zygote
        one = await create_latency(manager, 1, 50)
        many = await create_latency(manager, 64, 3)
        await manager.close()
        rows.append(("create, process runtime, 1 at a time", f"{pct(one, 0.5):.1f} ms", f"{pct(one, 0.99):.1f} ms", ""))
        rows.append(
            ("create, process runtime, 64 concurrent", f"{pct(many, 0.5):.1f} ms", f"{pct(many, 0.99):.1f} ms", "")
        )

        pexpect_floor = 0.1  # s: 50 ms delay before and 50 ms after each send
        embedded = await round_trips(SandboxConfig(runtime_dir=os.path.join(workdir, "emb")), n)
        served = await round_trips(SandboxConfig(base_url=url, token=token), n)
        for name, times in (("embedded", embedded), ("through the server", served)):
            rows.append(
                (
                    f"`echo hi` session round trip, {name}",
                    f"{pct(times, 0.5):.2f} ms",
                    f"{pct(times, 0.99):.2f} ms",
                    f"{pexpect_floor / statistics.median(times):.0f}x the pexpect floor (100 ms)",
                )
            )

        rows.append(await metrics_cost(workdir, n))

        before = peak_rss_mb(proc.pid)
        up, down = await transfer(SandboxConfig(base_url=url, token=token), mb, workdir)
        after = peak_rss_mb(proc.pid)
        rows.append((f"upload {mb} MB through the server", f"{up:.0f} MB/s", "", ""))
        rows.append((f"download {mb} MB through the server", f"{down:.0f} MB/s", "", ""))
        rows.append(("server peak RSS before -> after transfers", f"{before:.0f} MB", f"{after:.0f} MB", ""))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)

    print_table(("what", "p50 / rate", "p99", "comparison"), rows)
    print("targets: create p50 <= 50 ms; `echo hi` through the server p50 <= 3 ms; metrics on/off >= 0.95")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="round trips per mode")
    parser.add_argument("--mb", type=int, default=200, help="megabytes to upload and download")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.mb))
