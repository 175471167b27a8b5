"""``GET /metrics`` of a real server process: the token, the families the README lists, bounded labels."""

from __future__ import annotations

import subprocess
from typing import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import rock_envs
from rock_envs.sandbox import Sandbox, SandboxConfig
from rock_envs.sandbox.metrics import PER_SANDBOX_CAP
from tests.sandbox.model_service.agents import run_with_answers, script
from tests.support.paths import PYTHON
from tests.support.server import ServerProcess

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(srv: ServerProcess, token: bool = True) -> Samples:
    response = httpx.get(srv.url + "/metrics", headers=srv.headers if token else {}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def labelled(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for n, labels in samples if n == name]


@pytest.fixture
def srv() -> Iterator[ServerProcess]:
    server = ServerProcess(["--max-sandboxes", "3"]).start()
    yield server
    server.stop()


@pytest.fixture
def client(srv: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=60) as c:
        yield c


def test_metrics_need_the_token(srv: ServerProcess) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.get(srv.url + "/metrics", headers=headers)
        assert response.status_code == 401
        assert "--metrics-public" in response.json()["error"]["message"]
    assert value(scrape(srv), "rock_envs_sandboxes", state="running", runtime="process") == 0


def test_a_sandboxs_life_shows_in_the_metrics(srv: ServerProcess, client: httpx.Client) -> None:
    sid = client.post("/sandboxes", json={"ttl": 120}).json()["id"]
    assert client.post(f"/sandboxes/{sid}/sessions", json={"session": "s1"}).status_code == 201
    busy = "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; sleep 0.2; echo hi"  # CPU, then a wait
    ran = client.post(f"/sandboxes/{sid}/commands", json={"cmd": busy, "session": "s1"})
    assert ran.json()["output"].strip() == "hi"
    payload = b"x" * 5000
    assert client.put(f"/sandboxes/{sid}/files/content", params={"path": "a.bin"}, content=payload).is_success
    assert client.get(f"/sandboxes/{sid}/files/content", params={"path": "a.bin"}).content == payload
    info = client.get(f"/sandboxes/{sid}").json()

    s = scrape(srv)
    assert value(s, "rock_envs_sandboxes", state="running", runtime="process") == 1
    for phase in ("queue", "start", "agent_ready"):
        assert value(s, "rock_envs_sandbox_create_phase_seconds_count", phase=phase) == 1
    assert value(s, "rock_envs_sandbox_create_seconds_count", pool="miss") == 1
    exec_route = {"route": "/sandboxes/{sid}/commands", "method": "POST"}
    assert value(s, "rock_envs_http_request_seconds_count", **exec_route) == 1
    assert value(s, "rock_envs_http_request_seconds_sum", **exec_route) >= 0.2  # the command slept that long
    assert value(s, "rock_envs_http_request_seconds_count", route="/sandboxes/{sid}/sessions", method="POST") == 1
    assert value(s, "rock_envs_file_bytes_total", direction="upload") == len(payload)
    assert value(s, "rock_envs_file_bytes_total", direction="download") == len(payload)
    assert value(s, "rock_envs_sandbox_pids", sandbox=sid) >= 2  # its agent and the session's bash
    assert value(s, "rock_envs_sandbox_cpu_seconds", sandbox=sid) > 0
    if "cgroup-memory" in info["isolation"]:
        assert value(s, "rock_envs_sandbox_memory_bytes", sandbox=sid) > 0

    client.post(f"/sandboxes/{sid}/commands", json={"cmd": "kill -9 $PPID; sleep 5", "timeout": 10})
    client.post(f"/sandboxes/{sid}/commands", json={"cmd": "true"})  # finds the agent gone
    assert value(scrape(srv), "rock_envs_sandbox_agent_deaths_total") == 1
    client.delete(f"/sandboxes/{sid}")
    s = scrape(srv)
    assert value(s, "rock_envs_sandboxes", state="running", runtime="process") == 0
    assert not labelled(s, "rock_envs_sandbox_pids")


def test_429s_count_by_cap_and_no_histogram_carries_an_id(srv: ServerProcess, client: httpx.Client) -> None:
    ids = [client.post("/sandboxes", json={"ttl": 120}).json()["id"] for _ in range(3)]
    refused = client.post("/sandboxes", json={"ttl": 120})
    assert refused.status_code == 429
    for sid in ids:
        client.post(f"/sandboxes/{sid}/commands", json={"cmd": "true"})
    client.get("/no/such/path-xyz123")
    s = scrape(srv)
    assert value(s, "rock_envs_limit_refusals_total", cap="max_sandboxes") == 1
    assert value(s, "rock_envs_http_request_seconds_count", route="unmatched", method="GET") == 1
    per_sandbox = {"rock_envs_sandbox_cpu_seconds", "rock_envs_sandbox_memory_bytes", "rock_envs_sandbox_pids"}
    for name, labels in s:
        values = [v for _, v in labels]
        if name not in per_sandbox:
            assert not any(v.startswith("sb-") or "xyz123" in v for v in values), (name, labels)
    assert {d["sandbox"] for d in labelled(s, "rock_envs_sandbox_pids")} == set(ids)
    assert value(s, "rock_envs_sandbox_readings_capped") == max(0, len(ids) - PER_SANDBOX_CAP)
    for sid in ids:
        client.delete(f"/sandboxes/{sid}")


CALL = """
import openai
client = openai.OpenAI(max_retries=0)
r = client.chat.completions.create(model="policy", messages=[{"role": "user", "content": "hi"}])
print(r.choices[0].message.content)
"""


@pytest.mark.anyio
async def test_model_calls_and_remote_workers_show(srv: ServerProcess) -> None:
    config = SandboxConfig(base_url=srv.url, token=srv.token, model_service="trainer")
    async with Sandbox(config) as sb:

        async def answer(call):  # type: ignore[no-untyped-def]
            assert value(scrape(srv), "rock_envs_model_calls_pending") == 1
            await call.respond("ok")

        result = await run_with_answers(sb, await script(sb, "agent.py", CALL), answer)
        assert result.output.strip() == "ok", result.stderr
    s = scrape(srv)
    assert value(s, "rock_envs_model_call_seconds_count", status="answered") == 1
    assert value(s, "rock_envs_model_calls_pending") == 0

    venv = rock_envs.make_vec("CartPole-v1", 4, backend="remote", url=srv.url, token=srv.token, num_workers=2)
    try:
        venv.reset(seed=0)
        for _ in range(3):
            venv.step(venv.action_space.sample())
        s = scrape(srv)
        assert value(s, "rock_envs_remote_workers") == 2
        assert value(s, "rock_envs_relay_frames_total", direction="to_worker") >= 8  # make, reset, 3 steps each
        assert value(s, "rock_envs_relay_bytes_total", direction="to_client") > 0
    finally:
        venv.close()


def test_metrics_public_only_on_loopback_and_no_metrics_serves_none() -> None:
    public = ServerProcess(["--metrics-public"]).start()
    try:
        assert value(scrape(public, token=False), "rock_envs_sandboxes", state="running", runtime="process") == 0
        assert httpx.get(public.url + "/sandboxes").status_code == 401  # only /metrics is public
    finally:
        public.stop()
    quiet = ServerProcess(["--no-metrics"]).start()
    try:
        assert httpx.get(quiet.url + "/metrics", headers=quiet.headers).status_code == 404
        assert httpx.get(quiet.url + "/sandboxes", headers=quiet.headers).status_code == 200
    finally:
        quiet.stop()
    refused = subprocess.run(
        [PYTHON, "-m", "rock_envs.sandbox.server", "--host", "0.0.0.0", "--metrics-public", "--token", "t"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "only allowed on a loopback address" in refused.stderr


@pytest.mark.docker
def test_a_containers_cpu_memory_and_pids_come_from_its_engines_cgroups(image: str) -> None:
    server = ServerProcess(["--runtime", "docker"]).start()
    try:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=120) as c:
            sid = c.post("/sandboxes", json={"runtime": "docker", "image": image, "ttl": 120}).json()["id"]
            c.post(f"/sandboxes/{sid}/commands", json={"cmd": "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done"})
            s = scrape(server)
            assert value(s, "rock_envs_sandboxes", state="running", runtime="docker") == 1
            assert value(s, "rock_envs_sandbox_pids", sandbox=sid) >= 1
            assert value(s, "rock_envs_sandbox_memory_bytes", sandbox=sid) > 0
            assert value(s, "rock_envs_sandbox_cpu_seconds", sandbox=sid) > 0
            c.delete(f"/sandboxes/{sid}")
    finally:
        server.stop()
