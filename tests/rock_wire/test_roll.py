"""ROCK_WIRE.md §5 T7 (the primitives of ROLL's `SandboxManagerV2`) and a ROLL-style Sokoban env over
8 sandboxes, all through rl-rock's own client."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.rock_wire import roll_like

pytestmark = pytest.mark.anyio


async def test_sandbox_manager_v2_primitives(rock):
    sandbox = await roll_like.start_sandbox(rock)
    try:
        await sandbox.write_file_by_path("export FROM_BASHRC=1\n", "/root/.bashrc")
        await roll_like.create_session(sandbox, "agent")
        assert await roll_like.run_in_session(sandbox, "agent", "echo $FROM_BASHRC $HOME") == (0, "1 /root")
        assert await roll_like.run_in_session(sandbox, "agent", "exit_code() { return 4; }; exit_code") == (4, "")
        assert await roll_like.run_in_session(sandbox, "agent", "echo via-execute", execute=True) == (
            0,
            "via-execute\n",
        )
        started = time.monotonic()
        result = await roll_like.run_session_with_timeout(
            sandbox, "agent", "bash -c 'sleep 3; echo done'", 30, "/tmp/out.log"
        )
        assert result == ("success", "done")
        assert time.monotonic() - started >= 3  # it waited on `kill -0` of the job's real pid
        from rock.sdk.sandbox.speedup.types import SpeedupType

        speedup = await sandbox.network.speedup(SpeedupType.PIP, "http://mirrors.cloud.aliyuncs.com/pypi/simple/")
        assert speedup.exit_code == 0  # writes pip's config only: no network needed
    finally:
        await sandbox.stop()


@pytest.mark.slow
async def test_roll_sokoban_env_over_8_sandboxes(rock):
    envs = [roll_like.SokobanSandboxEnv(rock) for _ in range(8)]
    try:
        await asyncio.gather(*(env.start() for env in envs))
        first = await asyncio.gather(*(env.reset(seed=i % 2) for i, env in enumerate(envs)))
        assert first[0] == first[2] and first[1] == first[3]  # same seed, same board, whichever sandbox
        steps = await asyncio.gather(*(env.step("\\boxed{up}") for env in envs))
        assert all(isinstance(s["reward"], float) and "observation" in s for s in steps)
    finally:
        await asyncio.gather(*(env.close() for env in envs if env.sandbox is not None))
