"""Bad input: OpenAI-style 4xx errors, per-sandbox keys, flood limits, removed sandboxes, the trainer's mistakes."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from rock_envs.sandbox import InvalidRequestError, Sandbox, SandboxConfig, SandboxNotFoundError
from rock_envs.sandbox.errors import CallNotFoundError
from rock_envs.sandbox.model_service import ModelService, call_infra_error
from tests.sandbox.model_service.agents import run_with_answers, script
from tests.support.paths import PYTHON

pytestmark = pytest.mark.anyio

RAW = """
import json, os, sys, urllib.request, urllib.error
base, key = os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"]
out = []
for path, body, k in json.loads(sys.argv[1]):
    req = urllib.request.Request(base + path, data=body.encode(), method="POST",
                                 headers={"authorization": "Bearer " + (k or key), "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            out.append([r.status, json.loads(r.read())])
    except urllib.error.HTTPError as e:
        out.append([e.code, json.loads(e.read())["error"]])
print(json.dumps(out))
"""

BAD = [
    ("/chat/completions", "{not json", None, 400, None),
    ("/chat/completions", "[1, 2]", None, 400, None),
    ("/chat/completions", '{"messages": [{"role": "user", "content": "x"}]}', None, 400, "model"),
    ("/chat/completions", '{"model": "m"}', None, 400, "messages"),
    ("/chat/completions", '{"model": "m", "messages": []}', None, 400, "messages"),
    ("/chat/completions", '{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}', None, 400, "messages[0]"),
    (
        "/chat/completions",
        '{"model": "m", "messages": [{"role": "user", "content": 5}]}',
        None,
        400,
        "messages[0].content",
    ),
    ("/chat/completions", '{"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 3}', None, 400, "n"),
    (
        "/chat/completions",
        '{"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
        None,
        400,
        "stream",
    ),
    ("/completions", '{"model": "m"}', None, 400, "prompt"),
    ("/responses", '{"model": "m"}', None, 400, "input"),
    ("/responses", '{"model": "m", "input": [{"role": "wizard", "content": "x"}]}', None, 400, "input[0]"),
    ("/responses", '{"model": "m", "input": "x", "tools": {}}', None, 400, "tools"),
    ("/embeddings", '{"model": "m", "input": "x"}', None, 404, None),
    ("/chat/completions", '{"model": "m", "messages": [{"role": "user", "content": "x"}]}', "sk-rock-wrong", 401, None),
]


async def test_malformed_requests_get_openai_style_errors(make_config) -> None:  # type: ignore[no-untyped-def]
    cases = [[path, body, key] for path, body, key, _, _ in BAD]
    async with Sandbox(make_config()) as sb:
        result = await run_with_answers(sb, await script(sb, "raw.py", RAW) + " " + _quote(json.dumps(cases)), None)
        out = json.loads(result.output or "null")
        assert out is not None, result.stderr
        for (status, error), (path, body, _, want, param) in zip(out, BAD):
            assert status == want, (path, body, error)
            assert set(error) == {"message", "type", "param", "code"} and error["message"]
            assert error["param"] == param, (body, error)
        assert await sb.model_service.trajectory() == []  # refused calls are not calls


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


async def test_a_flooding_agent_meets_the_pending_limit_and_nothing_answered_is_lost(make_config) -> None:  # type: ignore[no-untyped-def]
    agent = """
import json, os, time, openai, threading
client, out = openai.OpenAI(max_retries=0), []
def one(i):
    try:
        r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": str(i)}])
        out.append(r.choices[0].message.content)
    except openai.RateLimitError as exc:
        out.append(exc.status_code)
waiting = [threading.Thread(target=one, args=(i,)) for i in range(2)]
[t.start() for t in waiting]
while not os.path.exists("go"):  # the trainer took both calls: the limit of 2 is reached
    time.sleep(0.01)
for i in range(2, 6):
    one(i)
open("flooded", "w").close()
[t.join() for t in waiting]
print(json.dumps(out))
"""
    async with Sandbox(make_config(model_service={"mode": "trainer", "max_pending": 2})) as sb:
        service = sb.model_service
        run = asyncio.ensure_future(sb.arun(await script(sb, "flood.py", agent), timeout=120))
        taken = []
        while len(taken) < 2:
            taken += await service.next_calls(timeout=30)
        await sb.write_file("go", "")
        while not any(e.name == "flooded" for e in await sb.list_files()):
            await asyncio.sleep(0.05)
        for call in taken:
            await call.respond("ok " + call.messages[-1]["content"])
        out = json.loads((await run).output)
        assert out[:4] == [429] * 4 and sorted(out[4:]) == ["ok 0", "ok 1"], out
        records = await service.trajectory()
        assert [r.status for r in records] == ["answered", "answered"]  # refused calls are not in it; answered ones are
        assert sorted(r.response["choices"][0]["message"]["content"] for r in records) == ["ok 0", "ok 1"]  # type: ignore[index]


async def test_keys_are_per_sandbox(make_config, mode) -> None:  # type: ignore[no-untyped-def]
    agent = "import os; print(os.environ['OPENAI_API_KEY'])"
    async with Sandbox(make_config()) as a, Sandbox(make_config()) as b:
        key_a = (await a.arun(f'python3 -c "{agent}"')).output.strip()
        key_b = (await b.arun(f'python3 -c "{agent}"')).output.strip()
        assert key_a.startswith("sk-rock-") and key_a != key_b
        # b's own endpoint refuses a's key: a sandbox cannot make (or see) calls as another
        cases = json.dumps(
            [["/chat/completions", '{"model": "m", "messages": [{"role": "user", "content": "x"}]}', key_a]]
        )
        result = await b.arun(await script(b, "raw.py", RAW) + " " + _quote(cases))
        assert json.loads(result.output)[0][0] == 401
        if mode == "server":  # over the server's /v1 routes, a key reaches only its own sandbox
            url = a.config.base_url
            async with httpx.AsyncClient(base_url=url) as http:
                call = asyncio.ensure_future(
                    http.post(
                        "/v1/chat/completions",
                        headers={"authorization": f"Bearer {key_a}"},
                        json={"model": "m", "messages": [{"role": "user", "content": "direct"}]},
                        timeout=60,
                    )
                )
                (taken,) = await a.model_service.next_calls(timeout=30)
                assert taken.sandbox_id == a.id and await b.model_service.next_calls(timeout=0) == []
                await taken.respond("to a")
                assert (await call).json()["choices"][0]["message"]["content"] == "to a"
                denied = await http.post("/v1/chat/completions", headers={"authorization": "Bearer nope"}, json={})
                assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
                trainer = await http.post("/model/calls/next", headers={"authorization": f"Bearer {key_a}"}, json={})
                assert trainer.status_code == 401  # a sandbox key is not the trainer's token


async def test_a_removed_sandbox_fails_fast_and_keeps_its_trajectory(make_config, mode) -> None:  # type: ignore[no-untyped-def]
    sb = await Sandbox(make_config()).start()
    service, sid = sb.model_service, sb.id
    agent = "import openai; openai.OpenAI(max_retries=0).chat.completions.create(model='m', messages=[{'role': 'user', 'content': 'q'}])"
    await sb.run_job(f'{PYTHON} -c "{agent}"')
    (call,) = await service.next_calls(timeout=30)
    if mode == "server":
        key = (await sb.arun("printenv OPENAI_API_KEY")).output.strip()
    await sb.stop()
    with pytest.raises(CallNotFoundError, match="no waiting call"):
        await call.respond("too late")
    with pytest.raises(SandboxNotFoundError, match="was removed"):
        await service.next_calls(timeout=5)
    assert [c async for c in service.calls()] == []  # ends at once
    (record,) = await service.trajectory(sid)
    assert record.status == "sandbox_removed" and record.error["type"] == "sandbox_removed"  # type: ignore[index]
    assert call_infra_error(record)["phase"] == "model"  # type: ignore[index]
    if mode == "server":
        async with httpx.AsyncClient(base_url=sb.config.base_url) as http:
            late = await http.post(
                "/v1/chat/completions",
                headers={"authorization": f"Bearer {key}"},
                json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
            )
            assert late.status_code == 410 and late.headers["x-should-retry"] == "false"
    await service.aclose()


async def test_trainer_mistakes_are_clear(make_config) -> None:  # type: ignore[no-untyped-def]
    async with Sandbox(make_config()) as sb:
        agent = "import openai; print(openai.OpenAI(max_retries=0).chat.completions.create(model='m', messages=[{'role': 'user', 'content': 'q'}]).choices[0].message.content)"
        job = await sb.run_job(f'{PYTHON} -c "{agent}"')
        (call,) = await sb.model_service.next_calls(timeout=30)
        with pytest.raises(InvalidRequestError, match="non-empty `choices`"):
            await call.respond({"not": "a completion"})
        await call.respond("fine")  # the call still waited for a good answer
        with pytest.raises(CallNotFoundError, match="answered already"):
            await call.respond("twice")
        await sb.wait_job(job.job_id, timeout=60)
        assert (await sb.job_logs(job.job_id)).data.strip() == "fine"
    with pytest.raises(InvalidRequestError, match="`base_url`"):
        ModelService()
    with pytest.raises(ValueError, match="needs `upstream_url`"):
        SandboxConfig(model_service="proxy")
    async with Sandbox(make_config(model_service=None)) as plain:
        with pytest.raises(InvalidRequestError, match="no model service"):
            _ = plain.model_service
