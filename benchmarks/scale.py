"""Density: many sandboxes on one machine, created at once, idle, and answering while they are up.

    python -m benchmarks.scale [--steps 64,256,1024] [--docker] [--image TAG]

For each step N of the process runtime (embedded SDK, one event loop): N `Sandbox.start()` at
once, from nothing; all-ready time, p50 and p99; the same N one at a time as the peer (per-sandbox
time, concurrent over sequential); system memory used (MemTotal - MemAvailable, before and after)
and PSS summed over every sandbox process, per sandbox; processes per sandbox; an `echo` session
round trip while the N are up, embedded and (at the last step) through a server holding N. It stops
before a step, saying so, if free memory would fall under 4 GB. With ``--docker``: 32 containers at
once, cold, and claims from a warm pool of 32. Every goal (issue 14) is printed beside its figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from typing import Any

from benchmarks import print_table
from benchmarks.sandbox import start_server
from rock_envs.sandbox import Sandbox, SandboxConfig, SandboxPool

FLOOR = 4 << 30  # bytes of available memory the benchmark never goes under


def available() -> int:
    with open("/proc/meminfo") as fh:
        fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh}
    return fields["MemAvailable"]


def used() -> int:
    with open("/proc/meminfo") as fh:
        fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh}
    return fields["MemTotal"] - fields["MemAvailable"]


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    parent = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


async def echo_p50(sb: Sandbox, n: int = 200) -> float:
    await sb.create_session("bench")
    for _ in range(20):
        await sb.arun("echo hi", session="bench")
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await sb.arun("echo hi", session="bench")
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


async def timed_start(sb: Sandbox) -> float:
    t0 = time.perf_counter()
    await sb.start()
    return time.perf_counter() - t0


async def step(n: int, config: SandboxConfig) -> dict[str, float]:
    sequential = []
    for _ in range(min(n, 64)):  # the peer: one at a time (64 is plenty for a per-sandbox figure)
        sb = Sandbox(config)
        sequential.append(await timed_start(sb))
        await sb.stop()
    zygote = set(descendants(os.getpid()))  # the shared manager's zygote, before the N
    before = used()
    sandboxes = [Sandbox(config) for _ in range(n)]
    t0 = time.perf_counter()
    times = await asyncio.gather(*(timed_start(sb) for sb in sandboxes))
    wall = time.perf_counter() - t0
    await asyncio.sleep(2)  # let the agents settle before counting their pages
    procs = [p for p in descendants(os.getpid()) if p not in zygote]
    row = {
        "wall": wall,
        "p50": pct(times, 0.5),
        "p99": pct(times, 0.99),
        "seq": statistics.mean(sequential) * 1e3,
        "conc": wall / n * 1e3,
        "used": (used() - before) / n / 1e6,
        "pss": sum(pss(p) for p in procs) / n / 1e6,
        "procs": len(procs) / n,
        "echo": await echo_p50(sandboxes[0]),
    }
    await asyncio.gather(*(sb.stop() for sb in sandboxes))
    return row


async def served_echo(n: int, workdir: str) -> float:
    proc, url, token = start_server(os.path.join(workdir, "srv"), ["--max-sandboxes", str(n + 8)])
    try:
        config = SandboxConfig(base_url=url, token=token)
        sandboxes = [Sandbox(config) for _ in range(n)]
        for i in range(0, n, 64):
            await asyncio.gather(*(sb.start() for sb in sandboxes[i : i + 64]))
        p50 = await echo_p50(sandboxes[0])
        await asyncio.gather(*(sb.stop() for sb in sandboxes))
        return p50
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def bare_engine_p50(image: str, n: int = 32) -> float:
    """The peer of the cold row: the Docker engine alone creating and starting n containers at once
    (a `sleep`, no network, as a sandbox's), so the table shows what rock-envs adds to the engine."""
    import concurrent.futures

    import docker

    client = docker.from_env(max_pool_size=n, timeout=120)

    def one(_: int) -> tuple[Any, float]:
        t0 = time.perf_counter()
        container = client.containers.create(
            image, ["sleep", "120"], detach=True, init=True, auto_remove=True, network_mode="none", read_only=True
        )
        container.start()
        return container, time.perf_counter() - t0

    with concurrent.futures.ThreadPoolExecutor(n) as threads:
        made = list(threads.map(one, range(n)))
        list(threads.map(lambda m: m[0].kill(), made))
    client.close()
    return pct([t for _, t in made], 0.5)


async def docker_rows(image: str, workdir: str) -> tuple[float, float, float]:
    config = SandboxConfig(runtime="docker", image=image, runtime_dir=os.path.join(workdir, "dk"))
    warm = Sandbox(config)
    await warm.start()  # the engine's first container pays for caches: not part of the figure
    await warm.stop()
    sandboxes = [Sandbox(config) for _ in range(32)]
    cold = await asyncio.gather(*(timed_start(sb) for sb in sandboxes))
    await asyncio.gather(*(sb.stop() for sb in sandboxes))
    async with SandboxPool(config, name="dk", size=32) as pool:
        claims = []
        for _ in range(32):
            t0 = time.perf_counter()
            sb = await pool.claim()
            claims.append(time.perf_counter() - t0)
            await sb.stop()
    bare = await asyncio.to_thread(bare_engine_p50, image)
    return pct(cold, 0.5), pct(claims, 0.5), bare


async def main(steps: list[int], docker: bool, image: str | None) -> None:
    workdir = tempfile.mkdtemp(prefix="re-scale-", dir="/tmp")
    config = SandboxConfig(runtime_dir=os.path.join(workdir, "emb"), lease=None)
    rows: list[tuple[str, str, str]] = []
    stopped = ""
    reached = 0
    async with Sandbox(config):  # keeps this loop's manager (and its zygote) up between steps
        per = 30e6  # bytes per sandbox until a step has measured it
        for n in steps:
            if available() - n * per < FLOOR:
                stopped = f"stopped before {n}: free memory would fall under {FLOOR >> 30} GB"
                break
            r = await step(n, config)
            reached, per = n, max(r["used"], r["pss"]) * 1e6 * 1.5  # with room for the next step's noise
            rows += [
                (
                    f"{n} created at once: all ready",
                    f"{r['wall']:.1f} s (p50 {r['p50']:.0f} ms, p99 {r['p99']:.0f} ms)",
                    "1,000 ≤ 15 s" if n >= 1000 else "",
                ),
                (
                    f"{n}: per sandbox, at once vs one at a time",
                    f"{r['conc']:.1f} ms vs {r['seq']:.1f} ms ({r['seq'] / r['conc']:.1f}x)",
                    "never slower at once: " + ("met" if r["conc"] <= r["seq"] else "MISSED"),
                ),
                (
                    f"{n} idle: memory per sandbox",
                    f"used {r['used']:.1f} MB, PSS {r['pss']:.1f} MB, {r['procs']:.1f} processes",
                    "≤ 8 MB: " + ("met" if max(r["used"], r["pss"]) <= 8 else "MISSED"),
                ),
                (
                    f"{n} up: `echo` p50, embedded",
                    f"{r['echo']:.2f} ms",
                    "≤ 2 ms: " + ("met" if r["echo"] <= 2 else "MISSED"),
                ),
            ]
            if n >= 1000:
                rows[-4] = (*rows[-4][:2], "1,000 ≤ 15 s: " + ("met" if r["wall"] <= 15 else "MISSED"))
    if reached:
        served = await served_echo(reached, workdir)
        rows.append(
            (
                f"{reached} up: `echo` p50, through the server",
                f"{served:.2f} ms",
                "≤ 3 ms: " + ("met" if served <= 3 else "MISSED"),
            )
        )
    if docker:
        from benchmarks.docker import resolve_image

        cold, warm, bare = await docker_rows(resolve_image(image), workdir)
        rows.append(
            (
                "docker, 32 at once, cold: p50",
                f"{cold:.0f} ms (the engine alone, 32 bare containers: {bare:.0f} ms)",
                "≤ 3 s: " + ("met" if cold <= 3000 else "MISSED"),
            )
        )
        rows.append(
            (
                "docker, from a warm pool of 32: claim p50",
                f"{warm:.2f} ms",
                "≤ 50 ms: " + ("met" if warm <= 50 else "MISSED"),
            )
        )
    shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"{os.cpu_count()} cores, {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') >> 30} GiB; process runtime, embedded SDK"
    )
    print_table(("what", "measured", "goal"), rows)
    if stopped:
        print(stopped)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="64,256,1024", help="sandbox counts, in order")
    parser.add_argument("--docker", action="store_true", help="also the docker rows (needs an engine and the image)")
    parser.add_argument("--image", default=os.environ.get("ROCK_ENVS_IMAGE"))
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.steps.split(",")], args.docker, args.image))
