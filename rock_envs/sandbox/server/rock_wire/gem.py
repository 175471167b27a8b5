"""ROCK's GEM routes (``/apis/v1/envs/gem/{make,reset,step,close,list}``), backed by rock-envs env workers.

``make`` starts a sandbox with an env worker in it (any rock-envs id: GEM's, Gymnasium's, a
catalog's) and answers its id; ``reset``/``step`` are one worker request each. Answers are raw JSON,
as ``rock.make``'s client reads them; errors are ``{"detail"}``, which it shows as ``HTTP error
<status> for <call>: ...``: 500 when the env or its id failed (as ROCK), 400 for a malformed
request, 401 without the token. Envs unused for
``GEM_IDLE`` seconds are closed with their sandbox.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from gymnasium.vector import AutoresetMode

from ... import models as m
from ...errors import AuthenticationError, SandboxError
from ...sdk.worker import WorkerChannel
from .auth import authorize
from .envelope import WireError, json_body, parse
from .models import GemMake, GemRef, GemReset, GemStep

router = APIRouter(prefix="/apis/v1/envs/gem", tags=["rock wire: gem"])
GEM_IDLE = 1800.0
STEP_TIMEOUT = 240.0


@dataclass
class GemEnv:
    env_id: str
    sid: str
    channel: WorkerChannel
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = field(default_factory=time.monotonic)
    steps: int = 0
    last_obs: Any = None  # what the dashboard shows
    last_reward: float | None = None
    last_info: dict[str, Any] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return repr(value)


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_plain))


class GemEnvs:
    def __init__(self, api: Any):
        self.api = api
        self.envs: dict[str, GemEnv] = {}

    async def make(self, env_id: str) -> str:
        from rock_envs.build import EnvFactory
        from rock_envs.core import pickling
        from rock_envs.registry import spec
        from rock_envs.worker.protocol import Make, decode, encode

        await self.sweep()
        env_spec = spec(env_id)  # an unknown id raises here, naming the closest ones
        info = await self.api.create(m.SandboxSpec(labels={"rock.gem": env_id}))
        try:
            channel = await self.api.open_worker(info.id, m.WorkerRequest())
            request = Make([0], pickling.dumps(EnvFactory(env_spec)), AutoresetMode.DISABLED, "raise")
            reply = decode(await channel.request(encode(request), timeout=STEP_TIMEOUT))
            self._check(reply)
        except BaseException:
            await self.api.delete(info.id)
            raise
        self.envs[info.id] = GemEnv(env_id, info.id, channel)
        return info.id

    @staticmethod
    def _check(reply: Any) -> Any:
        from rock_envs.worker.protocol import Failure

        if isinstance(reply, Failure):
            raise reply.to_error("gem env")
        return reply

    def get(self, gem_id: str, call: str) -> GemEnv:
        env = self.envs.get(gem_id)
        if env is None:
            raise WireError(f"`{call}`: no GEM env {gem_id!r}: it was closed, idle too long, or never made; make one.")
        return env

    async def request(self, gem_id: str, call: str, request: Any) -> Any:
        from rock_envs.worker.protocol import decode, encode

        env = self.get(gem_id, call)
        async with env.lock:
            env.last_used = time.monotonic()
            return self._check(decode(await env.channel.request(encode(request), timeout=STEP_TIMEOUT)))

    def seen(self, gem_id: str, obs: Any, info: dict[str, Any], reward: float | None, reset: bool = False) -> None:
        """Keep what the env last said, for the dashboard's live view."""
        env = self.envs.get(gem_id)
        if env is not None:
            env.last_obs, env.last_info, env.last_reward = obs, info, reward
            env.steps = 0 if reset else env.steps + 1

    async def close(self, gem_id: str) -> None:
        env = self.envs.pop(gem_id, None)
        if env is not None:
            await env.channel.aclose()
            try:
                await self.api.delete(env.sid)
            except SandboxError:
                pass

    async def sweep(self) -> None:
        now = time.monotonic()
        for gem_id in [g for g, env in self.envs.items() if now - env.last_used > GEM_IDLE and not env.lock.locked()]:
            await self.close(gem_id)

    async def close_all(self) -> None:
        for gem_id in list(self.envs):
            await self.close(gem_id)


def _envs(request: Request) -> GemEnvs:
    return request.app.state.rock_gem


async def _answer(request: Request, call: str, body_model: type[Any], fn: Any) -> JSONResponse:
    try:
        authorize(request, call)
        req = parse(body_model, await json_body(request, call), call)
        return JSONResponse(jsonable(await fn(req)))
    except AuthenticationError as exc:
        return JSONResponse({"detail": exc.message}, status_code=401)
    except WireError as exc:  # a malformed request or an unknown env: the client shows the text all the same
        return JSONResponse({"detail": exc.message}, status_code=400)
    except Exception as exc:  # the env's own error, or an unknown id: the client shows the text
        return JSONResponse({"detail": f"{type(exc).__name__}: {exc}"}, status_code=500)


@router.post("/make")
async def make(request: Request) -> JSONResponse:
    async def run(req: GemMake) -> Any:
        return {"sandbox_id": await _envs(request).make(req.env_id)}

    return await _answer(request, "make", GemMake, run)


@router.post("/reset")
async def reset(request: Request) -> JSONResponse:
    from rock_envs.worker.protocol import Reset

    async def run(req: GemReset) -> Any:
        batch = await _envs(request).request(req.sandbox_id, "reset", Reset([0], [req.seed], [None]))
        _envs(request).seen(req.sandbox_id, batch.obs[0], batch.infos[0], None, reset=True)
        return {"observation": batch.obs[0], "info": batch.infos[0]}

    return await _answer(request, "reset", GemReset, run)


@router.post("/step")
async def step(request: Request) -> JSONResponse:
    from rock_envs.worker.protocol import Step

    async def run(req: GemStep) -> Any:
        b = await _envs(request).request(req.sandbox_id, "step", Step([0], [req.action]))
        _envs(request).seen(req.sandbox_id, b.obs[0], b.infos[0], float(b.rewards[0]))
        return {
            "observation": b.obs[0],
            "reward": float(b.rewards[0]),
            "terminated": bool(b.terminated[0]),
            "truncated": bool(b.truncated[0]),
            "info": b.infos[0],
        }

    return await _answer(request, "step", GemStep, run)


@router.post("/close")
async def close(request: Request) -> JSONResponse:
    async def run(req: GemRef) -> Any:
        await _envs(request).close(req.sandbox_id)
        return {"sandbox_id": req.sandbox_id}

    return await _answer(request, "close", GemRef, run)


@router.post("/list")
async def list_envs(request: Request) -> JSONResponse:
    async def run(req: GemRef) -> Any:
        return {"env_id": [_envs(request).get(req.sandbox_id, "list").env_id]}

    return await _answer(request, "list", GemRef, run)
