"""A blocking client for one worker over a framed connection: what tests and simple callers use."""

from __future__ import annotations

from typing import Any

from rock_envs.core import pickling
from rock_envs.worker.protocol import Batch, Failure, Make, Reply, Request, decode, encode


class WorkerClient:
    def __init__(self, conn: Any):
        self.conn = conn  # anything with send_bytes/recv_bytes

    def request(self, request: Request) -> Reply:
        self.conn.send_bytes(encode(request))
        return self.receive()

    def receive(self) -> Reply:
        reply = decode(self.conn.recv_bytes())
        if isinstance(reply, Failure):
            raise reply.to_error()
        return reply  # type: ignore[return-value]  # a worker only ever sends replies

    def make(self, env_ids: list[int], factory: Any, **options: Any) -> Reply:
        return self.request(Make(list(env_ids), pickling.dumps(factory), **options))

    def step_all(self, request: Request) -> list[Batch]:
        """Send a Step and collect every partial Batch up to the final one."""
        self.conn.send_bytes(encode(request))
        out = [self.receive()]
        while isinstance(out[-1], Batch) and not out[-1].final:
            out.append(self.receive())
        return out  # type: ignore[return-value]
