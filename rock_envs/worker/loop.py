"""The worker's main loop over any framed connection (a multiprocessing Connection over a pipe or a
socket: both frame messages with a 4-byte big-endian length, the protocol's wire format)."""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import sys
import threading
import time

from rock_envs.core.live_view import FramePublisher
from rock_envs.worker.env_worker import EnvWorker
from rock_envs.worker.lane import AttachColumns, AttachLane, WorkerLane
from rock_envs.worker.protocol import Batch, Close, Reply, Request, decode, encode
from rock_envs.worker.shared_obs import SharedObsWriter


def freeze_heap() -> None:
    """Leave what this process holds now (its imports: ~150k objects for gymnasium and GEM) out of
    every later garbage collection. A full collection over them takes 50-100 ms on this kind of
    machine, a pause that lands in some vector step every few seconds; the envs, requests and
    replies made later are still collected. Frozen before a fork, the pages stay shared, too."""
    gc.freeze()


def die_with_parent(pdeathsig: bool = False) -> None:
    """Exit when the parent process goes, and ignore Ctrl-C (the parent owns it).

    A daemon thread checks `os.getppid()` twice a second, which holds whichever thread of the parent
    started us. `pdeathsig=True` also asks Linux to SIGKILL us at once when the parent goes; only
    safe when the parent is single-threaded (the fork server), since Linux fires it when the
    *thread* that forked us exits.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if pdeathsig and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    exit_with_parent()


def exit_with_parent(every: float = 0.5) -> None:
    """End this process once its parent is gone: a daemon thread compares `os.getppid()` every `every` s."""
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent, every), name="rock-envs-parent-watch", daemon=True).start()


def _watch_parent(parent: int, every: float) -> None:
    while True:
        time.sleep(every)
        if os.getppid() != parent:
            os._exit(0)


class _Frames:
    """Requests and replies as frames on `conn` (until a subprocess caller attaches a lane)."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def receive(self) -> Request:
        return decode(self.conn.recv_bytes())  # type: ignore[return-value]  # a caller sends requests

    def send(self, reply: Reply) -> None:
        self.conn.send_bytes(encode(reply))

    def close(self) -> None:
        pass


def serve(conn, worker: EnvWorker | None = None) -> None:
    """Answer requests on `conn` until `Close` or EOF.

    Array observations go through shared memory when the caller attaches it (subprocess backend),
    and so do whole-block steps once it attaches a lane (`rock_envs.worker.lane`). A worker the
    sandbox server opened also publishes its first env's frame while a page watches.
    """
    worker = worker or EnvWorker()
    shared = SharedObsWriter()
    frames = FramePublisher.from_env()
    channel: _Frames | WorkerLane = _Frames(conn)
    try:
        while True:
            try:
                request = channel.receive()
            except (EOFError, OSError):
                break  # the other side went away: nothing left to serve
            if isinstance(request, AttachLane):
                channel = WorkerLane(conn, request)
                continue
            if isinstance(request, AttachColumns) or shared.on_other(request):
                continue
            for reply in worker.handle(request):
                if isinstance(reply, Batch):
                    shared.on_batch(reply)
                channel.send(reply)
            if isinstance(request, Close):
                break
            if frames is not None:
                frames.after_request(worker.envs)
    finally:
        worker.close()
        channel.close()


def main(argv: list[str] | None = None) -> None:
    """`python -m rock_envs.worker --fd N`: serve on an inherited, connected socket."""
    import argparse
    from multiprocessing.connection import Connection

    parser = argparse.ArgumentParser(prog="python -m rock_envs.worker")
    parser.add_argument("--fd", type=int, required=True, help="a connected stream socket to serve on")
    args = parser.parse_args(argv)
    die_with_parent()
    freeze_heap()
    serve(Connection(args.fd))
