"""64 ROCK sandboxes through rl-rock's `SandboxGroup`, and over 1,024 sessions in one sandbox; no leaks."""

from __future__ import annotations

import pytest

from tests.support.processes import agent_pids, settle

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_sandbox_group_of_64(process_rock):
    from rock.sdk.sandbox.client import SandboxGroup
    from rock.sdk.sandbox.config import SandboxGroupConfig

    before = agent_pids()
    config = SandboxGroupConfig(
        base_url=process_rock.url,
        extra_headers={"Authorization": f"Bearer {process_rock.token}"},
        size=64,
        start_concurrency=64,
    )
    group = SandboxGroup(config)
    await group.start()
    try:
        ids = {sb.sandbox_id for sb in group.sandbox_list}
        assert len(ids) == 64 and len(process_rock.srv.sandboxes()) >= 64
        outs = [(await sb.arun(f"echo {i}")).output for i, sb in enumerate(group.sandbox_list[:8])]
        assert outs == [str(i) for i in range(8)]
    finally:
        await group.stop()
    assert settle(lambda: not process_rock.srv.sandboxes(), timeout=60)
    assert settle(lambda: len(agent_pids() - before) <= 2, timeout=60)  # the zygote may stay; no sandbox does


async def test_over_1024_sessions_in_one_sandbox(process_rock):
    import asyncio

    from rock.actions import CreateBashSessionRequest

    sb = process_rock.sandbox()
    await sb.start()
    try:
        names = [f"s{i}" for i in range(1030)]
        for start in range(0, len(names), 64):
            await asyncio.gather(
                *(sb.create_session(CreateBashSessionRequest(session=n)) for n in names[start : start + 64])
            )
        assert (await sb.arun("echo last", session=names[-1])).output == "last"
        assert (await sb.arun("echo first", session=names[0])).output == "first"
        count = await sb.arun("ps -e -o comm= | grep -c '^bash$'")
        assert int(count.output) >= 1030
    finally:
        await sb.stop()
