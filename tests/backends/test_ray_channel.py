"""The data channel of a Ray worker actor: only the driver holding the actor's secret gets it."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

import rock_envs
from rock_envs.backends.ray_channel import ChannelListener, ChannelRefused, connect, new_secret


def _accept_in_thread(listener: ChannelListener, timeout: float = 60.0) -> tuple[threading.Thread, list]:
    accepted: list = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept(timeout)), daemon=True)
    thread.start()
    return thread, accepted


def _closed_on_us(sock: socket.socket) -> bool:
    """The other side closed: end of stream, or a reset when it left bytes of ours unread."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_wrong_secret_is_refused_and_the_right_driver_still_gets_the_channel():
    secret = new_secret()
    listener = ChannelListener(secret, "127.0.0.1")
    thread, accepted = _accept_in_thread(listener)
    with pytest.raises(ChannelRefused, match="closed the channel during the handshake"):
        connect(listener.address, new_secret(), timeout=10)
    driver = connect(listener.address, secret, timeout=10)
    thread.join(timeout=60)
    actor_side = accepted[0]
    assert actor_side is not None
    driver.sendall(b"ping")
    assert actor_side.recv(4) == b"ping"
    with pytest.raises(ConnectionRefusedError):  # one driver: then it stops listening
        connect(listener.address, secret, timeout=10)
    driver.close()
    actor_side.close()


def test_bytes_before_the_handshake_are_never_read_as_a_message():
    """A stranger who skips the handshake and sends a frame is cut off; nothing is unpickled."""
    secret = new_secret()
    listener = ChannelListener(secret, "127.0.0.1")
    thread, accepted = _accept_in_thread(listener)
    stranger = socket.create_connection(listener.address, timeout=10)
    stranger.recv(32)  # the challenge
    stranger.sendall(b"\x00\x00\x00\x10" + b"\x80\x04" + b"x" * 30)  # a frame, not a proof
    assert _closed_on_us(stranger)
    stranger.close()
    driver = connect(listener.address, secret, timeout=10)
    thread.join(timeout=60)
    assert accepted[0] is not None
    driver.close()
    accepted[0].close()


def test_a_silent_connector_is_dropped_after_the_handshake_timeout(monkeypatch):
    monkeypatch.setattr("rock_envs.backends.ray_channel.HANDSHAKE_TIMEOUT", 0.5)
    secret = new_secret()
    listener = ChannelListener(secret, "127.0.0.1")
    thread, accepted = _accept_in_thread(listener)
    silent = socket.create_connection(listener.address, timeout=10)
    silent.recv(32)
    assert _closed_on_us(silent)  # it said nothing: dropped, so it cannot hold the actor
    driver = connect(listener.address, secret, timeout=10)
    thread.join(timeout=60)
    assert accepted[0] is not None
    for s in (silent, driver, accepted[0]):
        s.close()


@pytest.mark.ray
def test_an_actors_channel_takes_no_second_driver(ray_cluster):
    with rock_envs.make_vec("CartPole-v1", 4, backend="ray", num_workers=2) as venv:
        venv.reset(seed=0)
        host, port = venv.group.describe(0)["address"]
        assert host == "127.0.0.1"
        with pytest.raises(ConnectionRefusedError):
            connect((host, port), new_secret(), timeout=10)
        obs, rewards, *_ = venv.step(np.zeros(4, dtype=np.int64))  # the driver's channel is untouched
        assert rewards.tolist() == [1.0] * 4
