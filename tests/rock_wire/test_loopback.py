"""ROCK_WIRE.md §5 T10: rl-rock's client with a proxy set. `NO_PROXY` keeps it on loopback; without
it httpx sends to the proxy, which here is nothing (the suite's namespace has only loopback)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio
DEAD_PROXY = "http://127.0.0.1:9"


async def test_with_a_proxy_and_no_proxy_for_loopback(process_rock, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    sb = process_rock.sandbox()
    await sb.start()
    assert (await sb.arun("echo via-loopback")).output == "via-loopback"
    await sb.stop()


async def test_a_proxy_without_no_proxy_is_the_trap(process_rock, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(Exception, match="(?i)connect"):
        await process_rock.sandbox().start()


async def test_get_token_names_no_oss_endpoint(process_rock):
    import httpx

    reply = httpx.get(
        process_rock.url + "/apis/envs/sandbox/v1/get_token?account=primary",
        headers={"Authorization": f"Bearer {process_rock.token}"},
    ).json()
    assert reply["status"] == "Success"
    assert not {"Endpoint", "Bucket", "Region"} & set(reply["result"])  # the client never goes to OSS
