"""Envs of one worker stepped at once, for envs that wait (a sandbox exec, a tool, an HTTP call).

An env's step or reset, with autoreset and error handling around it, is written once as a *plan*: a
generator that yields each call into the env as a thunk (a function of no arguments) and gets the
thunk's value back, or its exception thrown in. `drive` runs a plan in the calling thread (the
sequential worker). `Overlap` runs the plans of many envs at once: a blocking env's plan is driven
on one of a pool of `threads` threads, an env with `async def step/reset` has its plan run as a task
on an asyncio loop of the worker's own (a daemon thread, so a caller's running loop is never
touched), where its thunks' coroutines are awaited.

One env's calls stay in order (its plan is one coroutine), and every env draws from its own
generators (`rock_envs.core.adapters.concurrent_random` for GEM's use of `random`), so the same seeds
give the same trajectories as sequential stepping whatever order the envs finish in.
"""

from __future__ import annotations

import asyncio
import inspect
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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


def declared_threads(env: Any) -> int:
    """The threads `env` asks of its worker: the largest `worker_threads` class attribute of the env,
    its wrappers (through `.env`) and the tools of a GEM `ToolEnvWrapper` (`.tools`), which an env
    or tool whose calls wait on a sandbox sets; 1 where none does."""
    threads, layer, seen = 1, env, set()
    while layer is not None and id(layer) not in seen:
        seen.add(id(layer))
        tools = vars(layer).get("tools") if hasattr(layer, "__dict__") else None
        for part in [layer, *(tools if isinstance(tools, (list, tuple)) else ())]:
            declared = getattr(type(part), "worker_threads", None)
            if isinstance(declared, int) and not isinstance(declared, bool):
                threads = max(threads, declared)
        layer = vars(layer).get("env") if hasattr(layer, "__dict__") else None
    return threads


class Overlap:
    """Runs many plans at once: a blocking env's plan on one of `threads` threads (`drive` there, so
    its calls cost no hand-over), an async env's plan (or every plan when `threads` is 1) as a
    task on the loop, where its awaitable thunks are awaited."""

    def __init__(self, threads: int) -> None:
        concurrent_random()
        self._loop = LoopThread("rock-envs-worker-loop")
        self._pool = ThreadPoolExecutor(threads, "rock-envs-env") if threads > 1 else None

    async def _drive(self, plan: Plan[Any]) -> Any:
        try:
            thunk = next(plan)
            while True:
                try:
                    value = thunk()
                    if inspect.isawaitable(value):
                        value = await value
                except Exception as e:
                    thunk = plan.throw(e)
                else:
                    thunk = plan.send(value)
        except StopIteration as stop:
            return stop.value

    def _start(self, plans: list[tuple[Plan[Any], bool]]) -> list[Future[Any]]:
        """One future per plan, `(plan, awaited)`: awaited for an env with `async def step/reset`."""
        futures: list[Future[Any]] = []
        on_loop: list[tuple[Future[Any], Plan[Any]]] = []
        for plan, awaited in plans:
            if awaited or self._pool is None:
                future: Future[Any] = Future()
                on_loop.append((future, plan))
            else:
                future = self._pool.submit(drive, plan)
            futures.append(future)

        async def one(future: Future[Any], plan: Plan[Any]) -> None:
            try:
                future.set_result(await self._drive(plan))
            except BaseException as e:
                future.set_exception(e)

        async def tasks() -> None:
            await asyncio.gather(*(one(f, p) for f, p in on_loop))

        if on_loop:
            asyncio.run_coroutine_threadsafe(tasks(), self._loop.loop)
        return futures

    def run_all(self, plans: list[tuple[Plan[Any], bool]]) -> list[Any]:
        """Every plan's value, in the order given. The first exception of a plan is raised once
        every plan has ended (nothing of this call runs on after it)."""
        futures = self._start(plans)
        wait(futures)
        return [f.result() for f in futures]

    def run_each(
        self, plans: list[tuple[int, Plan[Any], bool]], flush_after: float
    ) -> Iterator[tuple[list[int], list[Any], bool]]:
        """`(keys, values, last)` as plans finish: what finishes within `flush_after` seconds of the
        first of a group comes together. The first exception is raised once every plan has ended."""
        futures = self._start([(plan, awaited) for _, plan, awaited in plans])
        key_of = {id(f): key for f, (key, _, _) in zip(futures, plans)}
        pending: set[Future[Any]] = set(futures)
        failure: BaseException | None = None
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            if pending:
                more, pending = wait(pending, timeout=flush_after)
                done |= more
            finished = [f for f in futures if f in done]  # in the order given: deterministic groups
            failure = failure or next((f.exception() for f in finished if f.exception() is not None), None)
            if failure is None:
                ok = [f for f in finished if f.exception() is None]
                yield [key_of[id(f)] for f in ok], [f.result() for f in ok], not pending
        if failure is not None:
            raise failure

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._loop.close()


__all__ = ["Overlap", "Plan", "declared_threads", "drive", "is_async_env"]
