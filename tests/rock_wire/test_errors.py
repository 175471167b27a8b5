"""ROCK_WIRE.md §5 T9 (auth and errors) and bad input: each answers a Failed envelope naming the
problem (HTTP 200, as rl-rock's client needs), and the server goes on."""

from __future__ import annotations

import base64

import httpx
import pytest

pytestmark = pytest.mark.anyio
V1 = "/apis/envs/sandbox/v1"


async def test_every_token_header(process_rock):
    from rock.sdk.sandbox.client import Sandbox

    with pytest.raises(Exception, match="missing or wrong token"):
        await process_rock.sandbox(extra_headers={}).start()
    via_xrl = Sandbox(process_rock.config(extra_headers={}, xrl_authorization=process_rock.token))
    await via_xrl.start()
    await via_xrl.stop()
    basic = "Basic " + base64.b64encode(f"rock:{process_rock.token}".encode()).decode()
    for headers in ({"X-Key": process_rock.token}, {"Authorization": basic}):
        reply = httpx.get(process_rock.url + V1 + "/get_token", headers=headers).json()
        assert reply["status"] == "Success" and reply["result"]["AccessKeyId"] is None  # no OSS: stay local
    wrong = httpx.get(process_rock.url + V1 + "/get_token", headers={"X-Key": "nope"})
    assert wrong.status_code == 200 and wrong.json()["status"] == "Failed"


async def test_start_errors(process_rock, monkeypatch):
    from rock.sdk.common.exceptions import BadRequestRockError

    with pytest.raises(BadRequestRockError, match="more than this host has"):
        await process_rock.sandbox(memory="100000g").start()
    with pytest.raises(BadRequestRockError, match="memory 'lots'"):
        await process_rock.sandbox(memory="lots").start()
    fixed = process_rock.sandbox(sandbox_id="my-fixed-id")
    await fixed.start()
    try:
        assert fixed.sandbox_id == "my-fixed-id"
        with pytest.raises(BadRequestRockError, match="already exists"):
            await process_rock.sandbox(sandbox_id="my-fixed-id").start()
        assert (await fixed.arun("echo still-here")).output == "still-here"
    finally:
        await fixed.stop()


@pytest.mark.docker
async def test_missing_image_fails_fast_in_image_pull(docker_rock):
    from rock.sdk.common.exceptions import InternalServerRockError

    docker = docker_rock
    with pytest.raises(InternalServerRockError, match="image_pull: Failed to pull image 'no-such/image:1'") as raised:
        await docker.sandbox(image="no-such/image:1").start()
    assert "rock-envs image build" in str(raised.value) and "--image-map" in str(raised.value)
    # the client saw the failed image_pull phase (polling a pull that never comes would end in its own timeout)


async def test_bad_input_answers_failed_and_the_server_goes_on(process_rock):
    headers = {"Authorization": f"Bearer {process_rock.token}"}
    url = process_rock.url + V1

    def post(path: str, **kwargs: object) -> dict:
        kwargs.setdefault("headers", headers)
        reply = httpx.post(url + path, timeout=60, **kwargs)  # type: ignore[arg-type]
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    unknown = post("/run_in_session", json={"sandbox_id": "ghost", "session": "s", "command": "true"})
    assert unknown["status"] == "Failed" and "Sandbox ghost not found" in unknown["error"]
    assert unknown["result"]["code"] == 4000
    malformed = post("/run_in_session", content=b"{not json", headers={**headers, "Content-Type": "application/json"})
    assert malformed["status"] == "Failed" and "not JSON" in malformed["error"]
    missing = post("/run_in_session", json={"sandbox_id": "ghost"})
    assert missing["status"] == "Failed" and "command" in missing["error"]
    sb = process_rock.sandbox()
    await sb.start()
    try:
        no_session = post("/run_in_session", json={"sandbox_id": sb.sandbox_id, "session": "nope", "command": "true"})
        assert no_session["status"] == "Failed" and "'nope' does not exist" in no_session["error"]
        status = httpx.get(f"{url}/get_status?sandbox_id={sb.sandbox_id}&include_all_states=False", headers=headers)
        assert status.json()["result"]["is_alive"] is True  # the server went on
        for op in ("/commit", f"/sandboxes/{sb.sandbox_id}/archive"):
            unsupported = post(op, json={"sandbox_id": sb.sandbox_id})
            assert unsupported["status"] == "Failed" and "not supported by rock-envs" in unsupported["error"]
    finally:
        await sb.stop()


async def test_oversized_upload_is_a_failed_envelope(tmp_path):
    from tests.rock_wire.conftest import RockServer
    from tests.support.server import ServerProcess

    srv = ServerProcess().start()
    try:
        small = RockServer(srv, "process")
        # the app's upload cap is a create_app option; this server keeps the default, so send past the JSON cap
        sb = small.sandbox()
        await sb.start()
        big = tmp_path / "big.bin"
        big.write_bytes(b"x" * (20 << 20))  # over the 16 MiB JSON cap: the upload route must not apply it
        assert (await sb.upload_by_path(str(big), "/tmp/big.bin")).success
        reply = httpx.post(
            srv.url + V1 + "/write_file",
            headers={"Authorization": f"Bearer {srv.token}"},
            json={"sandbox_id": sb.sandbox_id, "path": "/tmp/x", "content": "y" * (17 << 20)},
            timeout=60,
        )
        assert reply.status_code == 200 and reply.json()["status"] == "Failed"
        assert "over this server's limit" in reply.json()["error"]
        await sb.stop()
    finally:
        srv.stop()
