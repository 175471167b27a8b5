"""``ModelService``: the trainer's handle on the calls that agents in sandboxes make to the chat API.

    service = sb.model_service                       # one sandbox's calls (embedded or server)
    service = ModelService(base_url=..., token=...)  # every sandbox's calls on a server
    async for call in service.calls():
        await call.respond("\\boxed{up}")            # text, or a whole chat.completion dict
    records = await service.trajectory(sb.id)

``calls()`` ends when the bound sandbox is removed, or after ``idle_timeout`` seconds without a call.
Each call is handed to one consumer only; one nobody answers fails for the agent after the sandbox's
``model_service.timeout``. ``aclose()`` releases an HTTP client this object made; safe to call twice.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Literal, overload

import httpx

from ..errors import SandboxNotFoundError
from . import dialects, tokens
from .models import (
    CallRecord,
    Endpoint,
    NextCalls,
    RespondedMany,
    RespondItem,
    RespondMany,
    RespondOutcome,
    RespondRequest,
    TokenTrajectory,
    Trajectory,
)

if TYPE_CHECKING:
    from ..sdk.server_client import ServerClient
    from .hub import ModelHub

POLL = 10.0
MAX_ANSWERS = 1024  # per request


class _Answers:
    """Answers on their way to the server, sent together. The first goes out at once; those given
    while a request is out wait for it and go in the next one, so a trainer answering 256 agents at
    once pays for a few requests, not 256, and a lone answer waits for nothing."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, send: Callable[[list[RespondItem]], Awaitable[list[RespondOutcome]]]
    ):
        self.loop, self.send = loop, send
        self.waiting: list[tuple[RespondItem, asyncio.Future[RespondOutcome]]] = []
        self.sending: asyncio.Task[None] | None = None

    async def submit(self, item: RespondItem) -> None:
        from ..errors import from_wire

        done: asyncio.Future[RespondOutcome] = self.loop.create_future()
        self.waiting.append((item, done))
        if self.sending is None:
            self.sending = self.loop.create_task(self._drain())
        outcome = await done
        if outcome.error_type is not None:
            raise from_wire(outcome.error_type, outcome.message or "")

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:MAX_ANSWERS], self.waiting[MAX_ANSWERS:]
                try:
                    outcomes = await self.send([item for item, _ in batch])
                except Exception as exc:  # the request failed: every answer in it failed with it
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                except BaseException:  # cancelled (the loop is closing): nobody is left waiting
                    for _, done in batch + self.waiting:
                        done.cancel()
                    self.waiting = []
                    raise
                for (_, done), outcome in zip(batch, outcomes):
                    if not done.done():
                        done.set_result(outcome)
        finally:
            self.sending = None


@dataclass
class ModelCall:
    """One waiting call: ``request`` is the OpenAI body the agent sent."""

    id: str
    sandbox_id: str
    endpoint: Endpoint
    request: dict[str, Any]
    created_at: float
    _service: ModelService = field(repr=False)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation as chat messages, whatever the dialect (``[]`` for a ``/v1/completions``
        call): a Responses call's instructions and input items, a Messages call's system prompt and
        blocks (``tool_use`` as ``tool_calls``, ``tool_result`` as ``tool`` messages)."""
        return dialects.chat_messages(self.endpoint, self.request)

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tools the agent offered, in chat-completions shape (``{"type": "function", "function": ...}``)."""
        return dialects.chat_tools(self.endpoint, self.request)

    async def respond(
        self,
        answer: str | dict[str, Any],
        usage: dict[str, Any] | None = None,
        *,
        token_ids: list[int] | None = None,
        logprobs: list[float] | None = None,
        prompt_token_ids: list[int] | None = None,
    ) -> None:
        """Answer with text (a completion is built around it), an assistant message (``{"role":
        "assistant", "content": ..., "tool_calls": [...]}``) or a whole completion object.

        ``token_ids`` (what the policy sampled), ``logprobs`` (one per token) and ``prompt_token_ids``
        (what it saw) are recorded on the call's :class:`CallRecord`; the agent never gets them.
        Without ``usage``, usage is counted from them.
        """
        req = RespondRequest(
            response=answer, usage=usage, token_ids=token_ids, logprobs=logprobs, prompt_token_ids=prompt_token_ids
        )
        await self._service._respond(self.id, req)

    async def fail(self, message: str) -> None:
        """Fail the call: the agent gets a 500 with ``message``."""
        await self._service._respond(self.id, RespondRequest(error=message))


class ModelService:
    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        sandbox_id: str | None = None,
        hub: ModelHub | None = None,
        client: ServerClient | None = None,
        request_timeout: float = 30.0,
    ):
        if (base_url is None) == (hub is None):
            from ..errors import InvalidRequestError

            raise InvalidRequestError(
                "`ModelService`: give `base_url` (a server) or use `sb.model_service` "
                "(an embedded sandbox); got " + ("both." if base_url else "neither.")
            )
        self.sandbox_id, self.hub, self.base_url = sandbox_id, hub, base_url
        self._client, self._own_client = client, False
        self._token, self._request_timeout = token, request_timeout
        self._answers: _Answers | None = None

    def _server(self) -> ServerClient:
        if self._client is None:
            from ..sdk.server_client import ServerClient

            self._client = ServerClient(str(self.base_url), self._token, timeout=self._request_timeout + 60)
            self._own_client = True
        return self._client

    async def _json(self, method: str, url: str, call: str, **kwargs: Any) -> httpx.Response:
        return await self._server().send(method, url, call, **kwargs)

    # ---- taking and answering calls -------------------------------------------------------------

    async def next_calls(self, max_calls: int = 64, timeout: float = POLL) -> list[ModelCall]:
        """Up to ``max_calls`` waiting calls; ``[]`` if none came within ``timeout`` seconds."""
        if self.hub is not None:
            records = await self.hub.next_calls(self.sandbox_id, max_calls, timeout)
        else:
            body = {"sandbox_id": self.sandbox_id, "max_calls": max_calls, "timeout": min(timeout, 60)}
            response = await self._json("POST", "/model/calls/next", "next_calls", body=body)
            records = NextCalls.model_validate_json(response.content).calls
        return [ModelCall(r.call_id, r.sandbox_id, r.endpoint, r.request, r.created_at, self) for r in records]

    async def calls(self, idle_timeout: float | None = None) -> AsyncIterator[ModelCall]:
        """Every call, as it comes; ends when the bound sandbox is removed or after ``idle_timeout`` idle seconds."""
        last = time.monotonic()
        while True:
            wait = POLL if idle_timeout is None else max(0.0, min(POLL, idle_timeout - (time.monotonic() - last)))
            try:
                batch = await self.next_calls(timeout=wait)
            except SandboxNotFoundError:
                if self.sandbox_id is None:
                    raise
                return
            for call in batch:
                yield call
            if batch:
                last = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                return

    async def _respond(self, call_id: str, req: RespondRequest) -> None:
        if self.hub is not None:
            self.hub.respond(call_id, req)
            return
        loop = asyncio.get_running_loop()
        if self._answers is None or self._answers.loop is not loop:
            self._answers = _Answers(loop, self._send_answers)
        await self._answers.submit(RespondItem(call_id=call_id, **req.model_dump()))

    async def _send_answers(self, items: list[RespondItem]) -> list[RespondOutcome]:
        from ..errors import ServerUnreachableError

        body = RespondMany(answers=items)
        try:
            response = await self._json("POST", "/model/calls/respond", "respond", body=body)
        except ServerUnreachableError as exc:
            # The server closed an idle kept-alive connection (uvicorn does after 5 s) as the
            # answers went out: once more. Answers that did land are then not found: landed.
            if not isinstance(exc.__cause__, (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)):
                raise
            response = await self._json("POST", "/model/calls/respond", "respond", body=body)
            outcomes = RespondedMany.model_validate_json(response.content).outcomes
            return [RespondOutcome(call_id=o.call_id) if o.error_type == "CallNotFoundError" else o for o in outcomes]
        return RespondedMany.model_validate_json(response.content).outcomes

    # ---- trajectories ---------------------------------------------------------------------------

    def _sid(self, sandbox_id: str | None, call: str) -> str:
        sid = sandbox_id or self.sandbox_id
        if not sid:
            from ..errors import InvalidRequestError

            raise InvalidRequestError(f"`{call}`: this service serves every sandbox; pass `sandbox_id`.")
        return sid

    @overload
    async def trajectory(
        self, sandbox_id: str | None = None, *, as_tokens: Literal[False] = False
    ) -> list[CallRecord]: ...

    @overload
    async def trajectory(self, sandbox_id: str | None = None, *, as_tokens: Literal[True]) -> TokenTrajectory: ...

    async def trajectory(
        self, sandbox_id: str | None = None, *, as_tokens: bool = False
    ) -> list[CallRecord] | TokenTrajectory:
        """Every call of the sandbox and its answer, in order (pending ones too); readable after removal.

        ``as_tokens=True``: the answered calls as one token sequence with a loss mask, and the call
        where their prompts stop extending each other (:class:`TokenTrajectory`).
        """
        records = await self._records(sandbox_id)
        if as_tokens:
            return tokens.sequence(self._sid(sandbox_id, "trajectory"), records)
        return records

    async def _records(self, sandbox_id: str | None) -> list[CallRecord]:
        sid = self._sid(sandbox_id, "trajectory")
        if self.hub is not None:
            return [r.model_copy(deep=True) for r in self.hub.trajectory(sid)]
        response = await self._json("GET", f"/model/trajectories/{sid}", "trajectory")
        return Trajectory.model_validate_json(response.content).records

    async def trajectory_jsonl(self, sandbox_id: str | None = None) -> str:
        """The trajectory as JSON Lines: one :class:`CallRecord` per line."""
        return "".join(r.model_dump_json() + "\n" for r in await self.trajectory(sandbox_id))

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
        self._client = None

    async def __aenter__(self) -> ModelService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
