"""Sticky upstreams with one retry elsewhere, and trajectories that survive a server restart."""

from __future__ import annotations

import contextlib
import json
import os
import signal

import pytest

from rock_envs.sandbox import Sandbox, SandboxConfig
from rock_envs.sandbox.errors import InvalidRequestError
from rock_envs.sandbox.model_service import ModelCall, ModelService
from tests.sandbox.model_service.agents import run_with_answers, script
from tests.sandbox.model_service.upstream_stub import Upstream
from tests.support.server import ServerProcess

pytestmark = pytest.mark.anyio

CALLS = """
import json, sys, openai
out = []
for session in sys.argv[1:]:
    client = openai.OpenAI(max_retries=0, default_headers={"session": session} if session != "-" else None)
    out.append(client.chat.completions.create(model="m", messages=[{"role": "user", "content": session}]).choices[0].message.content)
print(json.dumps(out))
"""


async def test_calls_stick_to_one_upstream_and_a_dead_one_is_skipped(make_config, upstream) -> None:  # type: ignore[no-untyped-def]
    other = Upstream()
    other.start()
    stubs = {upstream.url: upstream, other.url: other}
    try:
        spec = {"mode": "proxy", "upstream_urls": [upstream.url, other.url]}
        async with Sandbox(make_config(model_service=spec)) as sb:
            cmd = await script(sb, "agent.py", CALLS)
            result = await run_with_answers(sb, cmd + " - - - s1 s2 s1 s2", None)
            assert json.loads(result.output) == ["upstream: " + s for s in "- - - s1 s2 s1 s2".split()], result.stderr
            served = {url: [s["body"]["messages"][0]["content"] for s in stub.seen] for url, stub in stubs.items()}
            for key in ("-", "s1", "s2"):  # each sandbox's (or session's) calls went to one upstream
                assert sum(key in contents for contents in served.values()) == 1, served
            records = await sb.model_service.trajectory()
            own = records[0].upstream
            assert own in stubs and all(r.upstream == own for r in records[:3]) and records[0].attempts == []
            stubs[own].stop()  # the sandbox's own upstream dies
            result = await run_with_answers(sb, cmd + " -", None)
            assert json.loads(result.output) == ["upstream: -"], result.stderr  # answered by the other
            last = (await sb.model_service.trajectory())[-1]
            assert last.status == "answered" and last.upstream != own and last.upstream in stubs
            assert [a["upstream"] for a in last.attempts] == [own] and "cannot reach" in last.attempts[0]["error"]
    finally:
        for stub in stubs.values():
            with contextlib.suppress(Exception):
                stub.stop()


async def test_trajectories_survive_a_server_restart() -> None:
    srv = ServerProcess().start()
    try:
        config = SandboxConfig(base_url=srv.url, token=srv.token, model_service="trainer")
        sb = await Sandbox(config).start()
        agent = await script(sb, "agent.py", CALLS)

        async def answer(call: ModelCall) -> None:
            await call.respond("ok " + call.messages[-1]["content"], token_ids=[1, 2], prompt_token_ids=[7])

        result = await run_with_answers(sb, agent + " - again", answer)
        assert json.loads(result.output) == ["ok -", "ok again"], result.stderr
        before = [r.model_dump() for r in await sb.model_service.trajectory()]
        stored = os.path.join(srv.runtime_dir, "trajectories", sb.id + ".jsonl")
        assert [json.loads(line)["call_id"] for line in open(stored)] == [r["call_id"] for r in before]
        srv.stop(signal.SIGKILL)  # a crash: nothing is flushed on the way out
        srv.start()
        async with ModelService(base_url=srv.url, token=srv.token) as service:
            after = await service.trajectory(sb.id)
            assert [r.model_dump() for r in after] == before
            seq = await service.trajectory(sb.id, as_tokens=True)
            assert seq.token_ids == [7, 1, 2] and seq.drift is not None and seq.drift.index == 1  # [7] does not extend
        with contextlib.suppress(Exception):
            await sb.stop()
    finally:
        srv.stop()


ROLLOUT = """
import json, sys, openai
client = openai.OpenAI(max_retries=0)
messages = json.load(open("conversation.json"))
for _ in range(int(sys.argv[1])):
    messages.append({"role": "user", "content": f"turn {sum(m['role'] == 'user' for m in messages)}"})
    answer = client.chat.completions.create(model="m", messages=messages).choices[0].message
    messages.append({"role": "assistant", "content": answer.content})
print(json.dumps(messages))
"""


async def tokens_by_message(call: ModelCall) -> None:
    """Token k stands for message k, so each turn's prompt extends the last turn's prompt and answer."""
    n = len(call.messages)
    await call.respond(f"answer {n}", prompt_token_ids=list(range(100, 100 + n)), token_ids=[100 + n])


async def roll(sb: Sandbox, conversation: list, turns: int) -> list:  # type: ignore[type-arg]
    await sb.write_file("conversation.json", json.dumps(conversation))
    result = await run_with_answers(sb, await script(sb, "rollout.py", ROLLOUT) + f" {turns}", tokens_by_message)
    assert result.exit_code == 0, result.stderr[-3000:]
    return json.loads(result.output)  # type: ignore[no-any-return]


async def test_a_partial_rollout_resumes_from_its_last_recorded_call_after_a_server_restart() -> None:
    srv = ServerProcess().start()
    try:
        first = await Sandbox(SandboxConfig(base_url=srv.url, token=srv.token, model_service="trainer")).start()
        assert len(await roll(first, [], 2)) == 4
        srv.stop(signal.SIGKILL)  # mid-rollout: the sandbox dies with the server
        srv.start()
        async with ModelService(base_url=srv.url, token=srv.token) as service:
            before = await service.trajectory(first.id)
        last = before[-1]  # the conversation so far: the last call's request and its answer
        conversation = [*last.request["messages"], {"role": "assistant", "content": "answer 3"}]
        assert last.response["choices"][0]["message"]["content"] == "answer 3"  # type: ignore[index]

        spec = {"mode": "trainer", "trajectory_id": first.id}
        async with Sandbox(SandboxConfig(base_url=srv.url, token=srv.token, model_service=spec)) as second:
            with pytest.raises(InvalidRequestError, match="one live sandbox per trajectory"):
                await Sandbox(SandboxConfig(base_url=srv.url, token=srv.token, model_service=spec)).start()
            final = await roll(second, conversation, 2)
            assert [m["content"] for m in final] == ["turn 0", "answer 1", "turn 1", "answer 3"] + [
                "turn 2",
                "answer 5",
                "turn 3",
                "answer 7",
            ]
            mine = await second.model_service.trajectory()
        async with ModelService(base_url=srv.url, token=srv.token) as service:
            whole = await service.trajectory(first.id)
            seq = await service.trajectory(first.id, as_tokens=True)
        assert [r.model_dump() for r in whole] == [r.model_dump() for r in mine]
        assert [r.index for r in whole] == [0, 1, 2, 3]
        assert [r.model_dump() for r in whole[:2]] == [r.model_dump() for r in before]  # the old calls, untouched
        assert [r.sandbox_id for r in whole] == [first.id] * 2 + [second.id] * 2  # each made where it ran
        assert whole[2].request["messages"][:4] == conversation  # the new calls go on from the last recorded one
        assert seq.drift is None and seq.token_ids == list(range(100, 108))
        assert seq.loss_mask == [0, 1, 0, 1, 0, 1, 0, 1]
        stored = os.path.join(srv.runtime_dir, "trajectories", first.id + ".jsonl")
        assert [json.loads(line)["index"] for line in open(stored)] == [0, 1, 2, 3]  # one file for the rollout
        assert not os.path.exists(os.path.join(srv.runtime_dir, "trajectories", second.id + ".jsonl"))
        with contextlib.suppress(Exception):
            await first.stop()
    finally:
        srv.stop()
