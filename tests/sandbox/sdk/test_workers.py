"""Env hosting: a real EnvWorker inside the sandbox, frames relayed untouched, pipelined, both modes."""

from __future__ import annotations

import sys

import cloudpickle
import pytest

from rock_envs.core.errors import RemoteError
from rock_envs.sandbox import Sandbox, SandboxClosedError, SandboxConfig, SandboxDiedError, SyncSandbox
from rock_envs.worker.client import WorkerClient
from rock_envs.worker.protocol import Batch, Built, Close, Make, Reset, Step, decode, encode

pytestmark = pytest.mark.anyio
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the sandbox cannot import this test file


def cartpole(env_id: int) -> object:
    import rock_envs

    return rock_envs.make("CartPole-v1")


def sokoban(env_id: int) -> object:
    import rock_envs

    return rock_envs.make("game:Sokoban-v0-easy")


async def test_env_worker_make_reset_step_pipelined(sb: Sandbox) -> None:
    async with await sb.open_worker() as worker:
        built = decode(await worker.request(encode(Make([0, 1, 2], cloudpickle.dumps(cartpole))), timeout=120))
        assert isinstance(built, Built) and built.action_space.n == 2
        reset = decode(await worker.request(encode(Reset([0, 1, 2], [1, 2, 3], [None] * 3))))
        assert isinstance(reset, Batch) and reset.env_ids == [0, 1, 2] and reset.obs.shape == (3, 4)
        for _ in range(5):  # pipelined: five steps in flight before the first reply is read
            await worker.send(encode(Step([0, 1, 2], [0, 1, 0])))
        replies = [decode(await worker.recv()) for _ in range(5)]
        assert all(isinstance(r, Batch) and r.env_ids == [0, 1, 2] for r in replies)


async def test_text_env_and_remote_errors_come_back(sb: Sandbox) -> None:
    async with await sb.open_worker() as worker:
        decode(await worker.request(encode(Make([0], cloudpickle.dumps(sokoban))), timeout=120))
        batch = decode(await worker.request(encode(Reset([0], [0], [None]))))
        assert isinstance(batch, Batch) and isinstance(batch.obs[0], str)
        reply = decode(await worker.request(encode(Step([7], ["x"]))))
        assert type(reply).__name__ == "Failure"


async def test_two_workers_in_one_sandbox_and_close(sb: Sandbox) -> None:
    a, b = await sb.open_worker(), await sb.open_worker()
    for w in (a, b):
        decode(await w.request(encode(Make([0], cloudpickle.dumps(cartpole))), timeout=120))
    ra = decode(await a.request(encode(Reset([0], [5], [None]))))
    rb = decode(await b.request(encode(Reset([0], [5], [None]))))
    assert (ra.obs == rb.obs).all()  # same seed, same start, separate processes
    await a.send(encode(Close()))
    await a.aclose()
    with pytest.raises((SandboxClosedError, SandboxDiedError)):
        await a.send(b"x")
    assert decode(await b.request(encode(Step([0], [1])))).env_ids == [0]
    await b.aclose()


async def test_worker_dies_with_a_clear_error(sb: Sandbox) -> None:
    worker = await sb.open_worker(argv=["{python}", "-c", "import os, sys; os.read({fd}, 1); sys.exit(0)"])
    await worker.send(b"\x00")
    with pytest.raises(SandboxDiedError, match="closed"):
        await worker.recv(timeout=30)
    await worker.aclose()


def test_sync_worker_channel_speaks_to_worker_client(config: SandboxConfig) -> None:
    with SyncSandbox(config) as sb, sb.open_worker() as channel:
        client = WorkerClient(channel)
        assert isinstance(client.make([0], cartpole), Built)
        reset = client.request(Reset([0], [0], [None]))
        assert reset.env_ids == [0]  # type: ignore[union-attr]
        with pytest.raises(RemoteError):
            client.request(Step([7], [0]))  # an env id this worker does not host
