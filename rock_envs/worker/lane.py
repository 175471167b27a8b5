"""The step lane: a subprocess worker and its caller signal each other through shared memory.

On this machine one wake-up of a process sleeping on another core costs about 25 us (a unix-socket
round trip between two processes is ~50 us on two cores, ~17 us on one), while a CartPole step
costs ~7 us: for cheap envs the socket's wake-ups, not the envs, set the pace. With a lane:

- Each worker and its caller share a control block (counters, each written by one side only) and
  the worker's semaphore; all workers of a group share the caller's semaphore (the doorbell). Both
  reach the worker as file descriptors over its socket (`SCM_RIGHTS`), so no name is ever left in
  /dev/shm, even when the caller is killed.
- Every frame on the socket is announced by a counter first, so neither side polls the socket: a
  side waiting checks the counters for a moment (`spin`, yielding its core to anything runnable),
  then sleeps on its semaphore. Every message is followed by a post (one atomic add when nobody
  sleeps), so a sleeper never misses one.
- Once the envs are built with array observations and array actions, a whole-block `Step` goes
  through memory: the caller writes the actions (`Columns`) and a counter; the worker writes the
  rewards and done flags beside the shared observations (`rock_envs.worker.shared_obs`) and a
  counter. Only infos that are not empty (and failures) still go as a frame.

Requests keep their order: a lane step records how many frames were announced before it, and the
worker reads those first; a finished step records how many reply frames preceded it. The spin reads
counters with plain loads, which is sound on x86's total store order (each side writes the data
before the counter that publishes it, and reads the counter before the data); lanes are used only
there (`available()`), elsewhere the socket carries everything as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import platform
import socket
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from rock_envs.worker.protocol import Batch, Message, Reply, Request, Step, decode, encode
from rock_envs.worker.shared_obs import map_leaves, shm_path, unlink_quietly

SEM_BYTES = 32  # sizeof(sem_t) on x86-64 Linux
CONTROL_BYTES = 256
BELL_BYTES = 64
# Words of the control block (int64). The caller writes the first cache line, the worker the second.
STEPS, BEFORE, SENT = 0, 1, 2  # lane steps posted; frames announced before the last one; frames announced
DONE, FLAG, OUT, OUT_AT_DONE = 8, 9, 10, 11  # lane steps done; 1: its reply is a frame; frames announced; OUT then
WORKER_SEM = 128
SLEEP_SLICE = 0.05
"""Longest sleep on a semaphore before a waiting side checks the socket for a peer gone (EOF)."""


@dataclass
class AttachLane(Message):
    """Transport-private request, the first on a subprocess worker's socket: the doorbell's and the
    control block's file descriptors follow at once, as ancillary data of one byte."""

    spin: float


@dataclass
class AttachColumns(Message):
    """Transport-private request: whole-block steps of `env_ids` (in row order) go through the
    columns in the file `path` from now on; `action` is the (shape, dtype) of one action."""

    path: str
    env_ids: list[int]
    action: tuple[tuple[int, ...], str]


# ---- process-shared semaphores --------------------------------------------------------------


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_SEM_ARGS: dict[str, list[Any]] = {  # what each takes after its sem_t pointer
    "sem_init": [ctypes.c_int, ctypes.c_uint],
    "sem_post": [],
    "sem_trywait": [],
    "sem_clockwait": [ctypes.c_int, ctypes.POINTER(_Timespec)],
}


def _libc() -> Any:
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        for name, args in _SEM_ARGS.items():
            function = getattr(lib, name)
            function.argtypes, function.restype = [ctypes.c_void_p, *args], ctypes.c_int
    except (OSError, AttributeError):  # no glibc 2.30+ here: no lanes
        return None
    return lib


_LIBC = _libc()


def available() -> bool:
    """Lanes work here: Linux on x86-64 with glibc's process-shared semaphores."""
    return _LIBC is not None


class Semaphore:
    """A POSIX semaphore living in shared memory at `offset` of `buffer` (`create`: initialise it)."""

    def __init__(self, buffer: mmap.mmap, offset: int, create: bool):
        self._cell: Any = (ctypes.c_char * SEM_BYTES).from_buffer(buffer, offset)
        self._ptr = ctypes.c_void_p(ctypes.addressof(self._cell))
        if create and _LIBC.sem_init(self._ptr, 1, 0) != 0:
            raise OSError(ctypes.get_errno(), "sem_init failed")

    def post(self) -> None:
        _LIBC.sem_post(self._ptr)  # EOVERFLOW can only mean posts nobody needed: `drain` bounds them

    def drain(self) -> None:
        """Take the posts nobody slept for, so the count stays small and a sleep is a real one."""
        while _LIBC.sem_trywait(self._ptr) == 0:
            pass

    def sleep(self, seconds: float) -> bool:
        """Sleep until a post (True) or `seconds` pass (False); a signal ends it early (False)."""
        deadline = time.clock_gettime(time.CLOCK_MONOTONIC) + seconds
        whole = int(deadline)
        return (
            _LIBC.sem_clockwait(self._ptr, time.CLOCK_MONOTONIC, _Timespec(whole, int((deadline - whole) * 1e9))) == 0
        )

    def release(self) -> None:
        """Drop the view into the buffer (the buffer cannot be unmapped while it exists)."""
        self._cell = None


# ---- shared files ---------------------------------------------------------------------------


def anonymous_file(size: int) -> int:
    """A file descriptor of a new file of `size` zero bytes in /dev/shm, whose name is already gone."""
    path = shm_path("rock-envs-lane")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.unlink(path)
    os.ftruncate(fd, size)
    return fd


def _column_layout(count: int, action: tuple[tuple[int, ...], str]) -> list[tuple[tuple[int, ...], str]]:
    shape, dtype = action
    return [((count, *shape), dtype), ((count,), "<f8"), ((count,), "|b1"), ((count,), "|b1")]


class Columns:
    """The step's columns of one worker: actions in; rewards, terminated, truncated out."""

    def __init__(self, path: str, count: int, action: tuple[tuple[int, ...], str], create: bool):
        self.path = path
        self.buffer, leaves = map_leaves(path, _column_layout(count, action), create)
        self.actions, self.rewards, self.terminated, self.truncated = leaves
        self.listed = self.actions.ndim == 1 and self.actions.dtype.kind in "iub"  # handed to envs as Python scalars

    def free(self) -> None:
        self.actions = self.rewards = self.terminated = self.truncated = None  # type: ignore[assignment]
        try:
            self.buffer.close()
        except BufferError:  # a view still exported somewhere: the GC unmaps it later
            pass


def action_layout(space: Any) -> tuple[tuple[int, ...], str] | None:
    """(shape, dtype) of one action of `space` in the columns, or None: its actions go by frame."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return (), "<i8"
    if isinstance(space, (spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)):
        return tuple(space.shape), np.dtype(space.dtype).str
    return None


class _Control:
    """One side's view of a worker's control block."""

    def __init__(self, fd: int, create: bool):
        self.buffer = mmap.mmap(fd, CONTROL_BYTES)
        self.words = memoryview(self.buffer).cast("q")  # plain int loads and stores, ~30 ns each
        self.sem = Semaphore(self.buffer, WORKER_SEM, create)

    def free(self) -> None:
        self.sem.release()
        self.words.release()
        self.buffer.close()


class Doorbell:
    """The caller's semaphore, one per worker group, posted by every worker after each reply."""

    def __init__(self, fd: int | None = None):
        self.fd = anonymous_file(BELL_BYTES) if fd is None else fd
        self.buffer = mmap.mmap(self.fd, BELL_BYTES)
        self.sem = Semaphore(self.buffer, 0, create=fd is None)

    def free(self) -> None:
        self.sem.release()
        self.buffer.close()
        os.close(self.fd)


def wait_spinning(ready: Any, sem: Semaphore, spin: float, slice_: float, deadline: float | None = None) -> bool:
    """Until `ready()`: check it for `spin` seconds (yielding the core between checks), then sleep on
    `sem` for at most `slice_` (and not past `deadline`, a `perf_counter` time). True once ready;
    False when the slice passed with nothing (the caller checks its peer is alive, and calls again)."""
    until = time.perf_counter() + spin
    if deadline is not None:
        until = min(until, deadline)
    while not ready():
        now = time.perf_counter()
        if now < until:
            os.sched_yield()
            continue
        sem.drain()
        if ready():
            return True
        if deadline is not None:
            slice_ = min(slice_, deadline - now)
            if slice_ <= 0:
                return False
        if not sem.sleep(slice_) and not ready():
            return False
        until = 0.0  # woken (a post, maybe an old one): check, and sleep again at once if nothing
    return True


# ---- the worker's side ----------------------------------------------------------------------


class WorkerLane:
    """The worker's end: `receive()` the next request in order, `send(reply)` its replies."""

    def __init__(self, conn: Any, attach: AttachLane):
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            _, fds, _, _ = socket.recv_fds(sock, 1, 2)
        if len(fds) != 2:
            raise ConnectionError(f"AttachLane: expected 2 file descriptors after it, got {len(fds)}")
        self.conn, self.spin = conn, attach.spin
        self.bell = Doorbell(fds[0])
        self.control = _Control(fds[1], create=False)
        os.close(fds[1])
        self.words = self.control.words
        self.columns: Columns | None = None
        self.every: list[int] = []
        self.frames_read = self.frames_out = self.done = 0
        self.in_lane = False  # the request being answered came through the columns

    def _ready(self) -> bool:
        words = self.words
        return (words[STEPS] > self.done and words[BEFORE] == self.frames_read) or words[SENT] > self.frames_read

    def receive(self) -> Request:
        """The next request (a frame, or a lane step as a `Step`); EOFError once the caller is gone."""
        while not wait_spinning(self._ready, self.control.sem, self.spin, 0.25):
            if self.conn.poll(0):  # readable with nothing announced: the caller closed the socket
                self.conn.recv_bytes()  # raises EOFError
        words = self.words
        if words[STEPS] > self.done and words[BEFORE] == self.frames_read and self.columns is not None:
            self.in_lane = True
            actions = self.columns.actions
            return Step(self.every, actions.tolist() if self.columns.listed else actions.copy(), None)
        self.in_lane = False
        self.frames_read += 1
        request = decode(self.conn.recv_bytes())
        if isinstance(request, AttachColumns):
            self._attach_columns(request)
        return request  # type: ignore[return-value]  # a caller sends requests

    def _attach_columns(self, request: AttachColumns) -> None:
        if self.columns is not None:
            self.columns.free()
        self.columns = Columns(request.path, len(request.env_ids), request.action, create=False)
        self.every = list(request.env_ids)
        unlink_quietly(request.path)  # both sides have it mapped: the name can go

    def send(self, reply: Reply) -> None:
        words = self.words
        if self.in_lane:  # the step's one reply (a Step without flush_after has one): the lane step ends
            self.in_lane = False
            columns = self.columns
            assert columns is not None
            batch = reply if isinstance(reply, Batch) else None
            # carried: the columns hold the whole answer; else (infos to tell, a Failure) a frame does
            carried = batch is not None and batch.obs is None and batch.env_ids == self.every and not any(batch.infos)
            if batch is not None and carried:
                columns.rewards[:] = batch.rewards
                columns.terminated[:] = batch.terminated
                columns.truncated[:] = batch.truncated
            words[FLAG], words[OUT_AT_DONE] = (0 if carried else 1), self.frames_out
            self.done += 1
            words[DONE] = self.done
            if carried:
                self.bell.sem.post()
                return
        self.frames_out += 1
        words[OUT] = self.frames_out  # announced before it is written: the reader may block on the rest
        self.conn.send_bytes(encode(reply))
        self.bell.sem.post()

    def close(self) -> None:
        if self.columns is not None:
            self.columns.free()
        self.control.free()
        self.bell.free()


# ---- the caller's side ----------------------------------------------------------------------


class CallerLane:
    """The caller's end of one worker's lane (the group keeps one per worker, and one `Doorbell`)."""

    def __init__(self) -> None:
        self._fd: int | None = anonymous_file(CONTROL_BYTES)
        self.control = _Control(self._fd, create=True)
        self.words = self.control.words
        self.columns: Columns | None = None
        self.every: list[int] = []
        self.frames_sent = self.frames_in = self.steps = 0
        self.stepping = False  # a lane step is in flight

    def offer(self, sock: socket.socket, bell: Doorbell, spin: float) -> None:
        """Send `AttachLane` and the two descriptors: the first thing on a new worker's socket."""
        from rock_envs.core.frames import frame

        assert self._fd is not None
        sock.sendall(frame(encode(AttachLane(spin))))  # type: ignore[arg-type]  # transport-private
        socket.send_fds(sock, [b"L"], [bell.fd, self._fd])
        os.close(self._fd)
        self._fd = None

    def attach_columns(self, env_ids: list[int], action: tuple[tuple[int, ...], str]) -> AttachColumns:
        """Make the columns; the returned request, sent to the worker, maps them there."""
        if self.columns is not None:
            self.columns.free()
        path = shm_path()
        self.columns = Columns(path, len(env_ids), action, create=True)
        self.every = list(env_ids)
        return AttachColumns(path, list(env_ids), action)

    def post_step(self, request: Request) -> bool:
        """Send `request` through the columns if it is a whole-block step they can carry."""
        columns = self.columns
        if (
            columns is None
            or self.stepping
            or not isinstance(request, Step)
            or request.flush_after is not None
            or request.env_ids != self.every
        ):
            return False
        try:
            actions = np.asarray(request.actions)
        except (ValueError, TypeError, OverflowError):
            return False
        if actions.dtype != columns.actions.dtype or actions.shape != columns.actions.shape:
            return False  # not exactly what the space holds (a cast could change it): the frame carries it
        columns.actions[:] = actions
        words = self.words
        words[BEFORE] = self.frames_sent
        self.steps += 1
        words[STEPS] = self.steps  # after the actions and BEFORE: the worker reads this first
        self.stepping = True
        self.control.sem.post()
        return True

    def announce(self) -> None:
        """Before a frame is written: count it (the worker reads no frame it was not told of)."""
        self.frames_sent += 1
        self.words[SENT] = self.frames_sent

    def ring(self) -> None:
        self.control.sem.post()

    def next_reply(self) -> str | Batch | None:
        """What to take next from this worker: "frame" (one is announced and due first), the lane
        step's `Batch` (its obs still to be read), or None (nothing yet)."""
        words = self.words
        done = self.stepping and words[DONE] == self.steps  # DONE read before OUT: OUT is then as new
        out = words[OUT]
        if done and words[FLAG] == 0 and words[OUT_AT_DONE] == self.frames_in:
            self.stepping = False
            columns = self.columns
            assert columns is not None
            n = len(self.every)
            return Batch(
                self.every,
                None,
                columns.rewards.copy(),  # type: ignore[arg-type]  # arrays: the assembler joins them
                columns.terminated.copy(),  # type: ignore[arg-type]
                columns.truncated.copy(),  # type: ignore[arg-type]
                [{} for _ in range(n)],
            )
        if done and words[FLAG] == 1:
            self.stepping = False  # its reply is a frame, counted in OUT like any other
        if out > self.frames_in:
            self.frames_in += 1
            return "frame"
        return None

    def free(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.columns is not None:
            unlink_quietly(self.columns.path)
            self.columns.free()
            self.columns = None
        self.control.free()


__all__ = ["AttachColumns", "AttachLane", "CallerLane", "Columns", "Doorbell", "WorkerLane", "available"]
