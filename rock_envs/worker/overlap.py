"""Envs of one worker stepped at once, for envs that wait (a sandbox exec, a tool, an HTTP call).

An env's step or reset, with autoreset and error handling around it, is written once as a *plan*: a
generator that yields each call into the env as a thunk (a function of no arguments) and gets the
thunk's value back, or its exception thrown in. `drive` runs a plan in the calling thread (the
sequential worker). `Overlap` runs the plans of many envs at once on an asyncio loop of its own (a
daemon thread, so a caller's running loop is never touched): a thunk of an env with `async def
step/reset` is awaited there, a blocking env's thunk runs on a pool of `threads` threads.

One env's calls stay in order (its plan is one coroutine), and every env draws from its own
generators (`rock_envs.core.adapters.concurrent_random` for GEM's use of `random`), so the same seeds
give the same trajectories as sequential stepping whatever order the envs finish in.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Generator, Iterator, TypeVar

from rock_envs.core.adapters import concurrent_random
from rock_envs.core.loop_thread import LoopThread

T = TypeVar("T")
Thunk = Callable[[], Any]
Plan = Generator[Thunk, Any, T]


def drive(plan: Plan[T]) -> T:
    """Run `plan` here: each thunk is called in turn, its value sent back (its exception thrown in)."""
    try:
        thunk = next(plan)
        while True:
            try:
                value = thunk()
            except Exception as e:
                thunk = plan.throw(e)
            else:
                thunk = plan.send(value)
    except StopIteration as stop:
        return stop.value


def is_async_env(env: Any) -> bool:
    """Whether `env` (the object a factory made) has `async def step` or `async def reset`."""
    return any(inspect.iscoroutinefunction(getattr(env, name, None)) for name in ("step", "reset"))


class Overlap:
    """Runs many plans at once: async thunks awaited on the loop, blocking ones on `threads` threads
    (none when `threads` is 1: such thunks then run on the loop, one at a time)."""

    def __init__(self, threads: int) -> None:
        concurrent_random()
        self._loop = LoopThread("rock-envs-worker-loop")
        self._pool = ThreadPoolExecutor(threads, "rock-envs-env") if threads > 1 else None

    async def _drive(self, plan: Plan[Any], awaited: bool) -> Any:
        loop = asyncio.get_running_loop()
        try:
            thunk = next(plan)
            while True:
                try:
                    if awaited or self._pool is None:
                        value = thunk()
                    else:
                        value = await loop.run_in_executor(self._pool, thunk)
                    if inspect.isawaitable(value):
                        value = await value
                except Exception as e:
                    thunk = plan.throw(e)
                else:
                    thunk = plan.send(value)
        except StopIteration as stop:
            return stop.value

    def run_all(self, plans: list[tuple[Plan[Any], bool]]) -> list[Any]:
        """Every plan's value, in the order given; `(plan, awaited)`: awaited for an async env.
        The first exception of a plan is raised once every plan has ended."""

        async def everything() -> list[Any]:
            return await asyncio.gather(*(self._drive(p, a) for p, a in plans), return_exceptions=True)

        values = self._loop.run(everything())
        for value in values:
            if isinstance(value, BaseException):
                raise value
        return values

    def run_each(
        self, plans: list[tuple[int, Plan[Any], bool]], flush_after: float
    ) -> Iterator[tuple[list[int], list[Any], bool]]:
        """`(keys, values, last)` as plans finish: what finished within `flush_after` seconds of the
        first of a group comes together. The first exception is raised once every plan has ended."""
        done: queue.Queue[tuple[int, Any, bool]] = queue.Queue()

        async def one(key: int, plan: Plan[Any], awaited: bool) -> None:
            try:
                done.put((key, await self._drive(plan, awaited), False))
            except BaseException as e:
                done.put((key, e, True))

        async def everything() -> None:
            await asyncio.gather(*(one(k, p, a) for k, p, a in plans))

        running = asyncio.run_coroutine_threadsafe(everything(), self._loop.loop)
        left, failure = len(plans), None
        while left:
            keys, values = [], []
            first = done.get()
            deadline = time.monotonic() + flush_after
            item: tuple[int, Any, bool] | None = first
            while item is not None:
                key, value, failed = item
                left -= 1
                if failed:
                    failure = failure or value
                else:
                    keys.append(key)
                    values.append(value)
                item = None
                wait = deadline - time.monotonic()
                if left and wait > 0:
                    try:
                        item = done.get(timeout=wait)
                    except queue.Empty:
                        pass
            if failure is None and (keys or not left):
                if not left:
                    running.result()  # every plan has ended: the loop is left with nothing of this call
                yield keys, values, not left
        running.result()
        if failure is not None:
            raise failure

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._loop.close()


__all__ = ["Overlap", "Plan", "drive", "is_async_env"]
