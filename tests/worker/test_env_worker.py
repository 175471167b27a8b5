"""The EnvWorker and its protocol, with no transport: what every backend relies on."""

from __future__ import annotations

import pickle
import socket
import threading
from multiprocessing.connection import Connection

import cloudpickle
import gymnasium
import numpy as np
import pytest

from rock_envs.build import EnvFactory
from rock_envs.core.errors import RemoteError
from rock_envs.registry import spec
from rock_envs.worker import EnvWorker, serve
from rock_envs.worker.client import WorkerClient
from rock_envs.worker.protocol import (
    Batch,
    Built,
    Call,
    Close,
    Failure,
    Make,
    Reset,
    SetAttr,
    Step,
    Values,
    decode,
    encode,
    frame,
    read_frame,
)
from rock_envs.worker.shared_obs import AttachObs, SharedObsWriter, map_leaves


def _factory(env_id="CartPole-v1"):
    return cloudpickle.dumps(EnvFactory(spec(env_id), {}))


def _one(worker, request):
    (reply,) = list(worker.handle(request))
    return reply


@pytest.mark.parametrize(
    "message",
    [
        Make([0, 1], b"f", "same_step", "raise"),
        Reset([0], [3], [None]),
        Step([0, 1], [1, 0], 0.01),
        Call([0], "x", None),
        SetAttr([0], "a", [1]),
        Close(),
        Built(None, None, {}, None),
        Batch([0], np.zeros((1, 2)), [1.0], [False], [True], [{}], False),
        Values([1]),
        Failure("E", "m", "tb"),
    ],
)
def test_every_message_survives_the_wire(message):
    back = decode(encode(message))
    assert type(back) is type(message)
    assert pickle.dumps(back) == pickle.dumps(message)
    payload = frame(encode(message))
    stream = iter([payload[:4], payload[4:]])
    assert decode(read_frame(lambda n: next(stream))) is not None


def test_make_reset_step_batch_for_many_envs():
    worker = EnvWorker()
    built = _one(worker, Make([4, 5, 6], _factory()))
    assert isinstance(built, Built) and built.action_space == gymnasium.spaces.Discrete(2)
    batch = _one(worker, Reset([4, 5, 6], [0, 1, 2], [None] * 3))
    assert batch.env_ids == [4, 5, 6] and batch.obs.shape == (3, 4)
    single = gymnasium.make("CartPole-v1")
    np.testing.assert_array_equal(batch.obs[1], single.reset(seed=1)[0])
    batch = _one(worker, Step([4, 5, 6], np.array([0, 1, 0]), None))
    assert batch.final and batch.rewards == [1.0] * 3 and batch.terminated == [False] * 3
    np.testing.assert_array_equal(batch.obs[1], single.step(1)[0])


def test_a_flushing_step_sends_partial_batches():
    worker = EnvWorker()
    _one(worker, Make([0, 1, 2], _factory()))
    _one(worker, Reset([0, 1, 2], [0, 1, 2], [None] * 3))
    replies = list(worker.handle(Step([0, 1, 2], [0, 1, 0], flush_after=0.0)))
    assert [r.env_ids for r in replies] == [[0], [1], [2], []]
    assert [r.final for r in replies] == [False, False, False, True]


def test_a_failing_request_comes_back_as_failure_with_its_traceback():
    worker = EnvWorker()
    _one(worker, Make([0], _factory()))
    failure = _one(worker, Call([0], "no_such_thing", None))
    assert isinstance(failure, Failure) and failure.type_name == "AttributeError"
    assert "Traceback" in failure.traceback and "no_such_thing" in failure.message
    assert isinstance(_one(worker, Call([0], "spec", None)), Values)  # the worker goes on


def test_shared_obs_writer_moves_array_obs_out_of_the_reply(tmp_path):
    path = str(tmp_path / "obs")
    _, (caller_view,) = map_leaves(path, [((3, 4), "<f4")], create=True)
    writer = SharedObsWriter()
    assert writer.on_other(AttachObs(path, [((3, 4), "<f4")], {7: 0, 8: 1, 9: 2}))
    batch = Batch([8, 9], np.ones((2, 4), np.float32), [0.0, 0.0], [False, False], [False, False], [{}, {}])
    writer.on_batch(batch)
    assert batch.obs is None
    np.testing.assert_array_equal(caller_view[1:], 1.0)
    batch = Batch([9, 7], np.full((2, 4), 2, np.float32), [0.0] * 2, [False] * 2, [False] * 2, [{}, {}])
    writer.on_batch(batch)
    np.testing.assert_array_equal(caller_view[[2, 0]], 2.0)


def test_shared_obs_writer_writes_every_leaf_of_a_dict_batch(tmp_path):
    path = str(tmp_path / "obs")
    layout = [((2, 3), "<f4"), ((2,), "<i8")]
    _, (pos, count) = map_leaves(path, layout, create=True)
    writer = SharedObsWriter()
    assert writer.on_other(AttachObs(path, layout, {4: 0, 5: 1}))
    obs = {"pos": np.full((1, 3), 7, np.float32), "count": np.array([9])}
    batch = Batch([5], obs, [0.0], [False], [False], [{}])
    writer.on_batch(batch)
    assert batch.obs is None
    np.testing.assert_array_equal(pos[1], 7.0)
    assert count.tolist() == [0, 9]


def test_serve_answers_in_order_over_a_socket_until_close():
    ours, theirs = socket.socketpair()
    thread = threading.Thread(target=serve, args=(Connection(theirs.detach()),), daemon=True)
    thread.start()
    client = WorkerClient(Connection(ours.detach()))
    assert isinstance(client.make([0, 1], EnvFactory(spec("game:GuessTheNumber-v0-easy"), {})), Built)
    batch = client.request(Reset([0, 1], [0, 1], [None, None]))
    assert isinstance(batch.obs, list) and all(isinstance(o, str) for o in batch.obs)
    (batch,) = client.step_all(Step([0, 1], ["\\boxed{3}", "oops"]))
    assert batch.terminated == [False, True]
    with pytest.raises(RemoteError, match="AttributeError"):
        client.request(Call([0], "missing_attribute", None))
    client.request(Close())
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_frames_over_the_limit_are_refused_on_both_sides(monkeypatch):
    from rock_envs.core import frames

    monkeypatch.setattr(frames, "MAX_FRAME", 8)
    assert frames.frame(b"12345678") == b"\x00\x00\x00\x0812345678"
    with pytest.raises(frames.FrameTooLargeError, match=r"`send`: a frame of 9 bytes is over the limit of 8 bytes"):
        frames.frame(b"123456789", "`send`")
    stream = iter([b"\x00\x00\x00\x09", b"123456789"])
    with pytest.raises(frames.FrameTooLargeError, match="a frame of 9 bytes"):
        frames.read_frame(lambda n: next(stream))
