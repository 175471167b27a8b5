"""Proxy mode: forward a call to an upstream OpenAI-compatible server and record what came back."""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Callable

import httpx

from . import dialects, infra, tokens
from . import openai_format as oa
from .models import CallRecord, ModelServiceSpec
from .upstream_http import UpstreamPool, is_direct
from .upstreams import UpstreamRouter


class Clients:
    """The upstream clients of one hub: the lean one for plain-http upstreams (``upstream_http``),
    and, for https ones or those behind an ``HTTP_PROXY``, httpx (``httpx_client()``, made on first use)."""

    def __init__(self, httpx_client: Callable[[], httpx.AsyncClient]):
        self.lean = UpstreamPool()
        self.httpx_client = httpx_client
        self.direct: dict[str, bool] = {}

    def is_direct(self, base: str) -> bool:
        known = self.direct.get(base)
        if known is None:
            known = self.direct[base] = is_direct(base)
        return known


async def _send(
    clients: Clients,
    spec: ModelServiceSpec,
    base: str,
    record: CallRecord,
    body: bytes,
    agent_headers: dict[str, str],
) -> Any:
    url = base.rstrip("/") + dialects.UPSTREAM_PATHS[record.endpoint]
    headers = {"content-type": "application/json"}
    if record.endpoint == "messages":
        headers["anthropic-version"] = agent_headers.get("anthropic-version") or "2023-06-01"
    if spec.upstream_api_key:
        headers["authorization"] = f"Bearer {spec.upstream_api_key}"
        if record.endpoint == "messages":
            headers["x-api-key"] = spec.upstream_api_key
    try:
        if clients.is_direct(base):
            return await clients.lean.post(url, body, headers, spec.timeout)
        client = clients.httpx_client()
        request = client.build_request("POST", url, content=body, headers=headers, timeout=spec.timeout)
        try:
            return await client.send(request, stream=True)
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            # a kept-alive connection the upstream closed while idle (uvicorn does after 5 s): once more, on a new one
            return await client.send(request, stream=True)
    except (httpx.TimeoutException, TimeoutError):
        raise oa.OpenAIError(
            504, f"the upstream {base} did not answer within {spec.timeout} s.", "timeout", code="upstream_timeout"
        ) from None
    except (httpx.TransportError, OSError) as exc:
        raise oa.OpenAIError(
            502,
            f"cannot reach the upstream {base} ({type(exc).__name__}: {exc}).",
            "upstream_error",
            code="upstream_unreachable",
        ) from None


async def forward(
    client: Clients,
    router: UpstreamRouter,
    spec: ModelServiceSpec,
    record: CallRecord,
    body: bytes,
    agent_headers: dict[str, str],
) -> Any:
    """Send ``body`` upstream; a streamed answer is passed on chunk by chunk and rebuilt for the record.

    The upstream is the call's sticky one (by its ``session`` header, else its sandbox); if it cannot
    be reached or answers 5xx, it is skipped and the call sent once more to the next (``record.attempts``).
    With ``spec.capture_tokens`` the upstream is asked for token ids and logprobs too; they are
    recorded and taken out of what the agent gets (logprobs stay when the agent asked for them).
    """
    from .hub import Reply, _finish, answered

    capture = spec.capture_tokens and record.endpoint in ("chat.completions", "completions")
    if capture:
        body = json.dumps(tokens.ask_upstream(record.endpoint, record.request)).encode()
    order = router.order(spec.upstreams(), agent_headers.get("session") or record.sandbox_id)[:2]
    for n, base in enumerate(order):
        record.upstream, last = base, n + 1 == len(order)
        try:
            response = await _send(client, spec, base, record, body, agent_headers)
        except oa.OpenAIError as exc:
            router.failed(base)
            if last:
                raise
            record.attempts.append({"upstream": base, "error": exc.message})
            continue
        if response.status_code >= 500 and not last:
            data = await response.aread()
            await response.aclose()
            router.failed(base)
            text = data[:300].decode(errors="replace")
            record.attempts.append({"upstream": base, "error": f"HTTP {response.status_code}: {text}"})
            continue
        router.worked(base)
        break
    kind = response.headers.get("content-type", "")
    if response.status_code >= 400 or "text/event-stream" not in kind:
        try:
            data = await response.aread()
        finally:
            await response.aclose()
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        if response.status_code >= 400:
            error = (
                parsed.get("error")
                if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)
                else {"message": data[:2000].decode(errors="replace"), "type": "upstream_error"}
            )
            _finish(record, infra.status_of(error or {}, response.status_code), error=error)
        elif isinstance(parsed, dict):
            agent_view = answered(record, parsed)
            if capture:
                data = json.dumps(agent_view).encode()
        else:
            _finish(record, "answered")
        return Reply(response.status_code, data)
    assembler = dialects.assembler(record.endpoint)
    rewrite = oa.SSERewriter(tokens.agent_wants_logprobs(record.request)) if capture else None

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                assembler.feed(chunk)
                out = chunk if rewrite is None else rewrite.feed(chunk)
                if out:
                    yield out
            if rewrite is not None and rewrite.buf:
                yield rewrite.feed(b"\n\n")
            answered(record, assembler.result())
        except (httpx.HTTPError, OSError) as exc:  # TimeoutError and UpstreamBroken are OSErrors
            _finish(
                record,
                "upstream_error",
                response=assembler.result(),
                error={"message": f"the upstream stream broke: {exc}", "type": "upstream_error"},
            )
        finally:
            if record.status == "pending":
                _finish(record, "cancelled", response=assembler.result())
            await response.aclose()

    return Reply(200, stream=relay())
