"""The direct data channel of a Ray worker actor: one authenticated TCP socket, driver to actor.

Ray places and supervises the actors; the vector steps skip Ray's task machinery (about 1 ms per
actor call) and travel over a socket in the worker protocol's framing, as on the subprocess
backend. The actor listens on its node's IP (what Ray calls the node address, 127.0.0.1 on one
machine) on a port the kernel picks, and accepts exactly one connection that proves it knows the
actor's secret; then it stops listening.

The handshake: the actor sends a random challenge, the driver answers HMAC-SHA256(secret,
challenge), the actor sends one byte of welcome. Nothing is unpickled before that, so a stranger on
the network can neither drive the actor nor make it load a pickle. The secret is made by the driver
per actor and reaches it as an actor argument (inside the cluster, never over this socket).

The driver's socket has TCP keepalive set short: a node that vanishes without closing its sockets
(power, network) still breaks the channel within about `KEEPALIVE_IDLE + KEEPALIVE_INTERVAL *
KEEPALIVE_COUNT` seconds, without waiting for Ray's GCS to notice.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import time

CHALLENGE_BYTES = 32
WELCOME = b"\x01"
HANDSHAKE_TIMEOUT = 5.0  # a connector that stalls its handshake is dropped, so it cannot block the driver's
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 5, 2, 3


class ChannelRefused(ConnectionError):
    """The actor closed the channel during the handshake (wrong secret, or it already has a driver)."""


def new_secret() -> bytes:
    return os.urandom(32)


def _proof(secret: bytes, challenge: bytes) -> bytes:
    return hmac.new(secret, challenge, hashlib.sha256).digest()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ChannelRefused("the other side closed the channel during the handshake")
        data += chunk
    return data


class ChannelListener:
    """The actor's side: listen on `host`, hand over the first connection that knows `secret`."""

    def __init__(self, secret: bytes, host: str):
        self.secret = secret
        self.server = socket.create_server((host, 0))
        self.address: tuple[str, int] = (host, self.server.getsockname()[1])

    def accept(self, timeout: float) -> socket.socket | None:
        """The driver's socket, authenticated; None if none came within `timeout` (then it stops listening)."""
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                self.server.settimeout(left)
                try:
                    sock, _ = self.server.accept()
                except TimeoutError:
                    return None
                if self._welcome(sock):
                    return sock
            return None
        finally:
            self.server.close()

    def _welcome(self, sock: socket.socket) -> bool:
        challenge = os.urandom(CHALLENGE_BYTES)
        sock.settimeout(HANDSHAKE_TIMEOUT)
        try:
            sock.sendall(challenge)
            answer = _recv_exactly(sock, hashlib.sha256().digest_size)
            if hmac.compare_digest(answer, _proof(self.secret, challenge)):
                sock.sendall(WELCOME)
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # replies go out at once
                return True
        except OSError:
            pass
        sock.close()
        return False


def connect(address: tuple[str, int], secret: bytes, timeout: float) -> socket.socket:
    """The driver's side: connect to an actor's channel and prove the secret; raises `OSError`."""
    sock = socket.create_connection(address, timeout=timeout)
    try:
        challenge = _recv_exactly(sock, CHALLENGE_BYTES)
        sock.sendall(_proof(secret, challenge))
        if _recv_exactly(sock, len(WELCOME)) != WELCOME:
            raise ChannelRefused(f"the actor at {address[0]}:{address[1]} refused the channel")
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; elsewhere the system's keepalive timing applies
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_COUNT)
    return sock


__all__ = ["ChannelListener", "ChannelRefused", "connect", "new_secret"]
