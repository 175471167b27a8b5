"""``ModelHub``: the manager's side of the ModelService. One per manager (embedded or in the server).

Before ``attach(sandbox_id, spec, agent)`` a sandbox has no endpoint; after it, its agent listens on
its own loopback and every HTTP request there reaches :meth:`handle` through the tunnel (or over the
server's ``/v1`` routes with the sandbox's key). Each call is appended to the sandbox's trajectory
when it arrives and completed when answered, timed out or failed; nothing is ever dropped from it.
``detach`` fails the sandbox's waiting calls at once (410) and keeps its trajectory readable (the
last ``retain`` removed sandboxes). ``close`` detaches everything; safe to call twice.
"""

from __future__ import annotations

import asyncio
import collections
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Optional

from ..errors import CallNotFoundError, SandboxNotFoundError
from . import dialects, infra, tokens
from . import openai_format as oa

if TYPE_CHECKING:
    from ..agent_client import AgentClient
from .models import CallRecord, ModelServiceSpec, RespondRequest
from .store import TrajectoryStore
from .upstreams import UpstreamRouter

PROXY_POOLS = 16
"""Upstream connection pools of proxy mode (see ``ModelHub._proxy_client``)."""
HEADERS_NO_RETRY = {"x-should-retry": "false"}  # the openai client then fails at once instead of retrying


@dataclass
class Reply:
    status: int
    body: bytes = b""
    stream: Optional[AsyncIterator[bytes]] = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def media_type(self) -> str:
        return "text/event-stream" if self.stream is not None else "application/json"


def error_reply(exc: oa.OpenAIError, path: str = "") -> Reply:
    import json

    body = dialects.error_body(path, exc)
    return Reply(exc.status, json.dumps(body).encode(), headers={} if exc.retry else dict(HEADERS_NO_RETRY))


@dataclass
class _Box:
    sandbox_id: str
    spec: ModelServiceSpec
    key: str
    records: list[CallRecord] = field(default_factory=list)
    waiting: int = 0
    removed: bool = False
    tunnel: Any = None
    trajectory_id: str = ""
    """The id its calls are kept under: ``spec.trajectory_id`` or the sandbox's own."""


@dataclass
class _Pending:
    record: CallRecord
    future: asyncio.Future[tuple[Any, Optional[dict[str, Any]], dict[str, Any]]]
    claimed: bool = False


class ModelHub:
    def __init__(self, retain: int = 256, store_dir: str | None = None):
        self.boxes: dict[str, _Box] = {}
        self.by_key: dict[str, str] = {}
        self.retired: collections.OrderedDict[str, list[CallRecord]] = collections.OrderedDict()
        self.retain = retain
        self.pending: dict[str, _Pending] = {}  # trainer-mode calls waiting for an answer, oldest first
        self._changed: asyncio.Condition | None = None
        self._proxy: list[Any] = []
        self._clients: Any = None
        self._turn = 0
        self.store = TrajectoryStore(store_dir) if store_dir else None
        """Completed calls appended to disk, read back after a restart (``None``: memory only)."""
        self.router = UpstreamRouter()
        self.on_call: Callable[[str, float], None] | None = None
        """Told each call's status and seconds as it completes (the manager's metrics)."""

    # ---- sandboxes ------------------------------------------------------------------------------

    def register(self, sandbox_id: str, spec: ModelServiceSpec) -> str:
        """Give the sandbox an endpoint and a key of its own; returns the key."""
        if spec.mode == "proxy" and not spec.upstreams():
            raise oa_invalid("`model_service`: mode 'proxy' needs `upstream_url`, e.g. 'http://host:8000/v1'.")
        tid = spec.trajectory_id or sandbox_id
        holder = self._live_box(tid)
        if holder is not None:
            raise oa_invalid(
                f"`model_service.trajectory_id`: sandbox {holder.sandbox_id!r} is writing trajectory {tid!r} "
                "now; one live sandbox per trajectory. Stop that sandbox first, or give another id."
            )
        box = _Box(sandbox_id, spec, "sk-rock-" + secrets.token_urlsafe(24), trajectory_id=tid)
        if tid in self.retired:  # a rollout resumed: it goes on from its last recorded call
            box.records = list(self.retired[tid])
        elif self.store is not None:  # the same, from before a restart
            box.records = self.store.read(tid) or []
        self.boxes[sandbox_id] = box
        self.by_key[box.key] = sandbox_id
        return box.key

    async def attach(self, sandbox_id: str, spec: ModelServiceSpec, agent: AgentClient) -> None:
        """Register the sandbox and open its loopback tunnel (sets ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` in it)."""
        from .tunnel import HubTunnel

        key = self.register(sandbox_id, spec)
        tunnel = HubTunnel(self, sandbox_id)
        env = {
            "OPENAI_BASE_URL": "http://127.0.0.1:{port}/v1",
            "OPENAI_API_KEY": key,
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:{port}",
            "ANTHROPIC_API_KEY": key,
        }
        await tunnel.open(agent, spec.port, env)
        self.boxes[sandbox_id].tunnel = tunnel

    async def detach(self, sandbox_id: str) -> None:
        box = self.boxes.pop(sandbox_id, None)
        if box is None:
            return
        box.removed = True  # its key stays known, so late calls get a clear 410 rather than a 401
        for call_id, item in list(self.pending.items()):
            if item.record.sandbox_id == sandbox_id:
                del self.pending[call_id]
                if not item.future.done():
                    item.future.set_exception(
                        oa.OpenAIError(
                            410, f"sandbox {sandbox_id!r} was removed while this call waited.", "sandbox_removed"
                        )
                    )
        if box.tunnel is not None:
            await box.tunnel.close()
        self.retired[sandbox_id] = box.records
        if box.trajectory_id != sandbox_id:
            self.retired[box.trajectory_id] = box.records
        while len(self.retired) > self.retain:
            gone, _ = self.retired.popitem(last=False)
            self.by_key = {k: v for k, v in self.by_key.items() if v != gone}
        await self._notify()

    async def close(self) -> None:
        for sandbox_id in list(self.boxes):
            await self.detach(sandbox_id)
        for client in self._proxy:
            await client.aclose()
        self._proxy = []
        if self._clients is not None:
            self._clients.lean.close()
            self._clients = None

    def sandbox_for_key(self, key: str) -> str | None:
        return self.by_key.get(key)

    # ---- the agent's side -----------------------------------------------------------------------

    async def handle(
        self, sandbox_id: str | None, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Reply:
        """Answer one HTTP request of a sandbox's agent (from the tunnel or the server's ``/v1`` routes)."""
        try:
            return await self._handle(sandbox_id, method, path.split("?", 1)[0].rstrip("/"), headers, body)
        except oa.OpenAIError as exc:
            return error_reply(exc, path.split("?", 1)[0])

    async def _handle(
        self, sandbox_id: str | None, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Reply:
        box = self.boxes.get(sandbox_id or "")
        scheme, _, given = (headers.get("authorization") or "").partition(" ")
        if headers.get("x-api-key"):  # Anthropic's clients send the key so
            scheme, given = "bearer", headers["x-api-key"]
        if box is None and sandbox_id in self.retired:
            raise oa.OpenAIError(
                410, f"sandbox {sandbox_id!r} was removed; its calls are no longer answered.", "sandbox_removed"
            )
        if (
            box is None
            or scheme.lower() != "bearer"
            or not secrets.compare_digest(given.strip().encode(), box.key.encode())
        ):
            raise oa.OpenAIError(
                401,
                "invalid API key: use the OPENAI_API_KEY (or ANTHROPIC_API_KEY) set in this sandbox.",
                "invalid_request_error",
                code="invalid_api_key",
            )
        if method == "GET" and path == "/v1/models":
            import json

            return Reply(
                200,
                json.dumps(
                    {
                        "object": "list",
                        "data": [{"id": "rock-envs", "object": "model", "created": 0, "owned_by": box.spec.mode}],
                    }
                ).encode(),
            )
        if path not in dialects.ENDPOINTS:
            raise oa.OpenAIError(
                404,
                f"no route {method} {path}; this endpoint serves POST {', '.join(dialects.ENDPOINTS)}.",
                code="unknown_url",
            )
        if method != "POST":
            raise oa.OpenAIError(405, f"{path} takes POST, got {method}.")
        endpoint = dialects.ENDPOINTS[path]
        request = dialects.check_request(endpoint, body)
        if box.waiting >= box.spec.max_pending:
            raise oa.OpenAIError(
                429,
                f"sandbox {box.sandbox_id!r} already has {box.waiting} calls waiting, its "
                "limit (`max_pending`); wait for answers before sending more.",
                "rate_limit_error",
            )
        if len(box.records) >= box.spec.max_calls:
            raise oa.OpenAIError(
                429,
                f"sandbox {box.sandbox_id!r} made {len(box.records)} calls, its limit (`max_calls`).",
                "rate_limit_error",
            )
        record = CallRecord(
            call_id="call-" + secrets.token_hex(8),
            sandbox_id=box.sandbox_id,
            index=len(box.records),
            endpoint=endpoint,
            request=request,
            stream=bool(request.get("stream")),
            created_at=time.time(),
            model=request.get("model"),
            sampling=tokens.sampling_of(request),
        )
        box.records.append(record)
        box.waiting += 1
        reply: Reply | None = None
        try:
            if box.spec.mode == "proxy":
                from .proxy import forward

                reply = await forward(self._upstream_clients(box.spec), self.router, box.spec, record, body, headers)
            else:
                reply = await self._trainer(box, record)
            return reply
        except oa.OpenAIError as exc:
            error = exc.body()["error"]
            _finish(record, infra.status_of(error, exc.status), error=error)
            raise
        finally:
            box.waiting -= 1
            if reply is not None and reply.stream is not None:
                reply.stream = self._persist_after(record, box.trajectory_id, reply.stream)
            else:
                self._persist(record, box.trajectory_id)

    def _upstream_clients(self, spec: ModelServiceSpec) -> Any:
        if self._clients is None:
            from .proxy import Clients

            self._clients = Clients(lambda: self._proxy_client(spec))
        return self._clients

    def _proxy_client(self, spec: ModelServiceSpec) -> Any:
        """One of PROXY_POOLS clients, in turn. httpcore scans every connection of a pool for each
        request it assigns and releases, so one pool of a few hundred connections spent most of the
        server's time scanning; several small pools keep each scan short."""
        import httpx

        if not self._proxy:
            limits = httpx.Limits(max_connections=128, max_keepalive_connections=64)
            self._proxy = [
                httpx.AsyncClient(timeout=httpx.Timeout(spec.timeout), limits=limits) for _ in range(PROXY_POOLS)
            ]
        self._turn = (self._turn + 1) % PROXY_POOLS
        return self._proxy[self._turn]

    def _persist(self, record: CallRecord, trajectory_id: str) -> None:
        """A call completed (a stream: once its last chunk went out): store it and report it."""
        if self.store is not None and record.status != "pending":
            self.store.append(record, trajectory_id)
        if self.on_call is not None:
            self.on_call(record.status, time.time() - record.created_at)

    async def _persist_after(
        self, record: CallRecord, trajectory_id: str, stream: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        try:
            async for chunk in stream:
                yield chunk
        finally:
            self._persist(record, trajectory_id)

    async def _trainer(self, box: _Box, record: CallRecord) -> Reply:
        future: asyncio.Future[tuple[Any, Optional[dict[str, Any]], dict[str, Any]]] = (
            asyncio.get_running_loop().create_future()
        )
        self.pending[record.call_id] = _Pending(record, future)
        await self._notify()
        try:
            answer, usage, given = await asyncio.wait_for(asyncio.shield(future), box.spec.timeout)
        except asyncio.TimeoutError:
            raise oa.OpenAIError(
                504,
                f"nobody answered this call within {box.spec.timeout} s: the trainer must take "
                "it from `model_service.calls()` and `respond`; raise `model_service.timeout` if it "
                "needs longer.",
                "timeout",
                code="trainer_timeout",
            ) from None
        except asyncio.CancelledError:  # the agent hung up
            if record.status == "pending":
                _finish(record, "cancelled")
            raise
        finally:
            self.pending.pop(record.call_id, None)
        if isinstance(answer, oa.OpenAIError):
            raise answer
        if usage is None and given.get("completion_token_ids") is not None:
            usage = tokens.token_usage(given.get("prompt_token_ids"), given["completion_token_ids"])
        done = answered(record, dialects.answer(record.endpoint, record.request, answer, usage), given)
        if record.stream:
            return Reply(200, stream=_iterate(dialects.stream(record.endpoint, record.request, done)))
        import json

        return Reply(200, json.dumps(done).encode())

    # ---- the trainer's side ---------------------------------------------------------------------

    async def _notify(self) -> None:
        cond = self._cond()
        async with cond:
            cond.notify_all()

    def _cond(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def _unclaimed(self, sandbox_id: str | None) -> list[_Pending]:
        return [
            p
            for p in self.pending.values()
            if not p.claimed and (sandbox_id is None or p.record.sandbox_id == sandbox_id)
        ]

    async def next_calls(
        self, sandbox_id: str | None = None, max_calls: int = 64, timeout: float | None = 10.0
    ) -> list[CallRecord]:
        """Take up to ``max_calls`` unanswered calls (waiting up to ``timeout`` for a first). Each call is
        handed out once. A removed or unknown ``sandbox_id`` raises :class:`SandboxNotFoundError`."""
        self._check_sandbox(sandbox_id, "next_calls")
        cond = self._cond()
        async with cond:
            try:
                await asyncio.wait_for(
                    cond.wait_for(lambda: bool(self._unclaimed(sandbox_id)) or self._gone(sandbox_id)), timeout
                )
            except asyncio.TimeoutError:
                return []
            self._check_sandbox(sandbox_id, "next_calls")
            taken = self._unclaimed(sandbox_id)[:max_calls]
            for item in taken:
                item.claimed = True
            return [item.record for item in taken]

    def _gone(self, sandbox_id: str | None) -> bool:
        return sandbox_id is not None and sandbox_id not in self.boxes

    def _check_sandbox(self, sandbox_id: str | None, call: str) -> None:
        if sandbox_id is not None and sandbox_id not in self.boxes:
            state = "was removed" if sandbox_id in self.retired else "has no model service (or never existed)"
            raise SandboxNotFoundError(
                f"`{call}`: sandbox {sandbox_id!r} {state}; its trajectory stays readable with `trajectory`."
            )

    def respond(self, call_id: str, req: RespondRequest) -> CallRecord:
        """Answer a waiting call with text, an assistant message or a whole completion (or ``error``:
        fail it with a 500); ``token_ids``, ``logprobs`` and ``prompt_token_ids`` go on the record."""
        item = self.pending.get(call_id)
        if item is None or item.future.done():
            raise CallNotFoundError(
                f"`respond`: no waiting call {call_id!r}; it was answered already, timed out, or "
                "its sandbox was removed. Take calls from `calls()` and answer each once."
            )
        answer, usage = req.response, req.usage
        if req.error is not None:
            item.future.set_result((oa.OpenAIError(500, req.error, "trainer_error"), None, {}))
            return item.record
        try:  # a bad answer fails here, for the trainer, and the call still waits for a good one
            dialects.answer(item.record.endpoint, item.record.request, answer, usage)
            token_ids, logprobs, prompt_token_ids = tokens.check_respond_tokens(
                req.token_ids, req.logprobs, req.prompt_token_ids
            )
        except (TypeError, ValueError) as exc:
            raise oa_invalid(f"`respond`: {exc}") from exc
        given = {
            "completion_token_ids": token_ids,
            "completion_logprobs": logprobs,
            "prompt_token_ids": prompt_token_ids,
        }
        item.future.set_result((answer, usage, {k: v for k, v in given.items() if v is not None}))
        return item.record

    def _live_box(self, trajectory_id: str) -> _Box | None:
        return next((b for b in self.boxes.values() if b.trajectory_id == trajectory_id), None)

    def trajectory(self, sandbox_id: str) -> list[CallRecord]:
        """The calls of a sandbox, or of a trajectory id (``ModelServiceSpec.trajectory_id``)."""
        box = self.boxes.get(sandbox_id) or self._live_box(sandbox_id)
        if box is not None:
            return list(box.records)
        if sandbox_id in self.retired:
            return list(self.retired[sandbox_id])
        stored = self.store.read(sandbox_id) if self.store is not None else None
        if stored is not None:  # from before a restart
            return stored
        raise SandboxNotFoundError(
            f"`trajectory`: no sandbox {sandbox_id!r} with a model service here (or it was "
            f"removed longer ago than the last {self.retain})."
        )


def _finish(record: CallRecord, status: str, **fields: Any) -> None:
    record.status = status  # type: ignore[assignment]
    record.answered_at = time.time()
    for name, value in fields.items():
        setattr(record, name, value)


def answered(record: CallRecord, done: dict[str, Any], given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Finish ``record`` with the whole completion ``done`` and return what the agent gets: ``done``
    without the token fields it did not ask for. Tokens in ``given`` win over those found in ``done``."""
    found = {**dialects.record_fields(record.endpoint, done), **(given or {})}
    agent_view = dialects.agent_view(record.endpoint, record.request, done)
    _finish(record, "answered", response=agent_view, usage=dialects.usage(record.endpoint, agent_view), **found)
    return agent_view


async def _iterate(chunks: Any) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def oa_invalid(message: str) -> Exception:
    from ..errors import InvalidRequestError

    return InvalidRequestError(message)
