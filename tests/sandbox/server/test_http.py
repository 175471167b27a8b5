"""The server's HTTP surface: auth, OpenAPI, and bad input that must get 4xx (never 500)."""

from __future__ import annotations

import os
from typing import Iterator

import httpx
import pytest

from tests.support.server import ServerProcess


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=60) as c:
        yield c


@pytest.fixture
def sid(client: httpx.Client) -> Iterator[str]:
    created = client.post("/sandboxes", json={"ttl": 120})
    assert created.status_code == 201, created.text
    yield created.json()["id"]
    client.delete(f"/sandboxes/{created.json()['id']}")


def test_health_needs_no_token_and_everything_else_does(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/health").json()["ok"] is True
    for method, path in [
        ("GET", "/sandboxes"),
        ("POST", "/sandboxes"),
        ("GET", "/openapi.json"),
        ("POST", "/sandboxes/x/commands"),
    ]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": server.token}):
            response = httpx.request(method, server.url + path, headers=headers, json={})
            if path == "/openapi.json":
                continue  # the schema is public: it holds no secrets
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.json()["error"]["type"] == "AuthenticationError"


def test_openapi_schema_is_served(server: ServerProcess) -> None:
    schema = httpx.get(server.url + "/openapi.json").json()
    assert "/sandboxes/{sid}/commands" in schema["paths"]
    assert "CommandResult" in schema["components"]["schemas"]


BAD = [
    ("POST", "/sandboxes", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
    ("POST", "/sandboxes", {"json": {"memory": "lots"}}, 422),
    ("POST", "/sandboxes", {"json": {"runtime": "vm"}}, 422),
    ("POST", "/sandboxes", {"json": {"pids_limit": -1}}, 422),
    ("POST", "/sandboxes", {"json": {"surprise": 1}}, 422),
    ("POST", "/sandboxes", {"json": []}, 422),
    ("GET", "/sandboxes", {"params": {"label": "no-equals"}}, 422),
    ("GET", "/sandboxes/sb-nope", {}, 404),
    ("DELETE", "/sandboxes/sb-nope", {}, 404),
    ("POST", "/sandboxes/{sid}/commands", {"json": {}}, 422),
    ("POST", "/sandboxes/{sid}/commands", {"json": {"cmd": "echo", "timeout": -3}}, 422),
    ("POST", "/sandboxes/{sid}/commands", {"json": {"cmd": "echo", "session": "../x"}}, 422),
    ("POST", "/sandboxes/{sid}/commands", {"json": {"cmd": "echo", "session": "missing"}}, 404),
    ("POST", "/sandboxes/{sid}/commands", {"json": {"cmd": "pwd", "cwd": "../.."}}, 403),
    ("POST", "/sandboxes/{sid}/commands", {"json": {"cmd": 5}}, 422),
    ("POST", "/sandboxes/{sid}/sessions", {"json": {"session": ""}}, 422),
    ("DELETE", "/sandboxes/{sid}/sessions/missing", {}, 404),
    ("GET", "/sandboxes/{sid}/jobs/job-missing", {}, 404),
    ("POST", "/sandboxes/{sid}/jobs/job-missing/wait", {"params": {"timeout": 1}}, 404),
    ("POST", "/sandboxes/{sid}/jobs/job-missing/wait", {"params": {"timeout": "soon"}}, 422),
    ("GET", "/sandboxes/{sid}/jobs/job-missing/logs", {"params": {"stream": "stdin"}}, 422),
    ("GET", "/sandboxes/{sid}/files/content", {"params": {"path": "../../etc/passwd"}}, 403),
    ("GET", "/sandboxes/{sid}/files/content", {"params": {"path": "/etc/shadow"}}, 403),
    ("GET", "/sandboxes/{sid}/files/content", {"params": {"path": "nope.txt"}}, 404),
    ("GET", "/sandboxes/{sid}/files/content", {"params": {"path": "."}}, 422),
    ("GET", "/sandboxes/{sid}/files/content", {}, 422),
    ("GET", "/sandboxes/{sid}/files/content", {"params": {"path": "a\x00b"}}, 422),
    ("PUT", "/sandboxes/{sid}/files/content", {"params": {"path": "../x"}, "content": b"x"}, 403),
    ("PUT", "/sandboxes/{sid}/files/content", {"params": {"path": "."}, "content": b"x"}, 422),
    ("PUT", "/sandboxes/{sid}/files/tar", {"params": {"path": "t"}, "content": b"not a tar"}, 422),
    ("GET", "/sandboxes/{sid}/files/tar", {"params": {"path": "missing-dir"}}, 422),
    ("GET", "/sandboxes/{sid}/files", {"params": {"path": "missing"}}, 404),
    ("DELETE", "/sandboxes/{sid}/files", {"params": {"path": "."}}, 403),
    ("GET", "/no/such/route", {}, 404),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), BAD, ids=[f"{m} {p} {s}" for m, p, _, s in BAD])
def test_bad_input_gets_a_clear_4xx(
    client: httpx.Client, sid: str, method: str, path: str, kwargs: dict, status: int
) -> None:
    response = client.request(method, path.format(sid=sid), **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["message"]
    if status == 404 and "{sid}" not in path and "sb-nope" in path:
        assert "sb-nope" in body["error"]["message"]


def test_oversized_body_is_413(client: httpx.Client, sid: str) -> None:
    response = client.post(
        f"/sandboxes/{sid}/commands", content=b"x" * (17 * 1024 * 1024), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["error"]["type"] == "PayloadTooLargeError"

    def chunked() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * (1024 * 1024)

    response = client.post(
        f"/sandboxes/{sid}/commands", content=chunked(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_a_tar_escaping_its_directory_is_refused(client: httpx.Client, sid: str, tmp_path: object) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../../evil.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    response = client.put(f"/sandboxes/{sid}/files/tar", params={"path": "t"}, content=buf.getvalue())
    assert response.status_code == 403, response.text
    assert not os.path.exists("/evil.txt")


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(server: ServerProcess) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {server.token}"}
    failures: list[str] = []

    for operation in schema.get_all_operations():
        op = operation.ok()
        if op.method.upper() == "DELETE" and op.path == "/sandboxes/{sid}":
            continue
        if op.method.upper() == "POST" and op.path == "/pools":
            continue  # a valid pool of hundreds starts hundreds of sandboxes: work, not a crash to find

        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=op.as_strategy())
        def check(case: object) -> None:
            response = case.call(headers=headers, timeout=30)  # type: ignore[attr-defined]
            if response.status_code == 500:  # 503 is a runtime refusing (e.g. no such image), not a crash
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")  # type: ignore[attr-defined]

        check()
    assert not failures, "\n".join(failures[:10])
