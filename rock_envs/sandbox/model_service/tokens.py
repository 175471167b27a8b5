"""Exact tokens: what a call's record keeps of the sampled token ids and logprobs, and the one
token sequence a trajectory makes.

Upstreams in vLLM's style return token ids when asked (``return_token_ids``: ``prompt_token_ids``
on a chat completion and on each legacy completion choice, ``token_ids`` on each choice, per chunk
when streamed) and logprobs (``logprobs.content[*].logprob`` for chat, ``logprobs.token_logprobs``
for legacy completions; with ``return_tokens_as_token_ids`` each token reads ``token_id:N``). Proxy
mode asks for them (:func:`ask_upstream`), records them (:func:`extract`) and takes them out of the
answer again (:func:`strip`) unless the agent asked for logprobs itself.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from .models import CallRecord, Endpoint, TokenDrift, TokenTrajectory, TokenTurn

SAMPLING = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "stop",
    "stop_sequences",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "reasoning_effort",
)
"""Request fields recorded as ``CallRecord.sampling`` (those of the three dialects together)."""
TOKEN_FIELDS = ("token_ids", "prompt_token_ids")


def sampling_of(request: dict[str, Any]) -> dict[str, Any]:
    return {k: request[k] for k in SAMPLING if request.get(k) is not None}


def agent_wants_logprobs(request: dict[str, Any]) -> bool:
    return request.get("logprobs") not in (None, False)


def ask_upstream(endpoint: Endpoint, request: dict[str, Any]) -> dict[str, Any]:
    """The request sent upstream: the agent's, asking also for token ids and the sampled tokens' logprobs."""
    out = dict(request, return_token_ids=True)
    if not agent_wants_logprobs(request):
        out["logprobs"] = True if endpoint == "chat.completions" else 0
        out["return_tokens_as_token_ids"] = True  # the agent never sees these token strings
    return out


def strip(obj: dict[str, Any], keep_logprobs: bool) -> dict[str, Any]:
    """A completion (or a streamed chunk) without the token fields the agent did not ask for."""
    out = {k: v for k, v in obj.items() if k not in TOKEN_FIELDS}
    choices = out.get("choices")
    if isinstance(choices, list):
        out["choices"] = [
            {k: (None if k == "logprobs" and not keep_logprobs else v) for k, v in c.items() if k not in TOKEN_FIELDS}
            if isinstance(c, dict)
            else c
            for c in choices
        ]
    return out


def _ints(value: Any) -> Optional[list[int]]:
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    return None


def _token_id(token: Any) -> Optional[int]:
    if isinstance(token, str) and token.startswith("token_id:"):
        try:
            return int(token[9:])
        except ValueError:
            return None
    return None


def extract(endpoint: Endpoint, response: dict[str, Any]) -> dict[str, Any]:
    """The record's token fields (and ``finish_reason``, ``model``) read from a whole completion."""
    choices = response.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    found: dict[str, Any] = {"finish_reason": choice.get("finish_reason")}
    if isinstance(response.get("model"), str):
        found["model"] = response["model"]
    found["prompt_token_ids"] = _ints(response.get("prompt_token_ids")) or _ints(choice.get("prompt_token_ids"))
    ids, values = _ints(choice.get("token_ids")), []
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict):
        if isinstance(logprobs.get("content"), list):  # chat
            entries = [e for e in logprobs["content"] if isinstance(e, dict)]
            values = [e.get("logprob") for e in entries]
            tokens = [_token_id(e.get("token")) for e in entries]
        else:  # legacy completions
            values = list(logprobs.get("token_logprobs") or [])
            tokens = [_token_id(t) for t in logprobs.get("tokens") or []]
        if ids is None and tokens and all(t is not None for t in tokens):
            ids = [t for t in tokens if t is not None]
    numbers = [float(v) for v in values if isinstance(v, (int, float))]
    found["completion_token_ids"] = ids
    found["completion_logprobs"] = numbers if numbers and len(numbers) == len(values) else None
    return {k: v for k, v in found.items() if v is not None}


def check_respond_tokens(
    token_ids: Any, logprobs: Any, prompt_token_ids: Any
) -> tuple[Optional[list[int]], Optional[list[float]], Optional[list[int]]]:
    """The trainer's token fields, checked (``ValueError`` naming the field and the fix)."""
    for name, value in (("token_ids", token_ids), ("prompt_token_ids", prompt_token_ids)):
        if value is not None and _ints(value) is None:
            raise ValueError(f"`{name}` must be a list of ints (token ids), got {str(value)[:80]}.")
    if logprobs is not None:
        if not isinstance(logprobs, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in logprobs
        ):
            raise ValueError(f"`logprobs` must be a list of floats, one per token, got {str(logprobs)[:80]}.")
        if token_ids is None or len(logprobs) != len(token_ids):
            raise ValueError(
                f"`logprobs` has {len(logprobs)} values but `token_ids` has "
                f"{'none' if token_ids is None else len(token_ids)}; give one logprob per sampled token."
            )
        logprobs = [float(v) for v in logprobs]
    return token_ids, logprobs, prompt_token_ids


def token_usage(prompt_token_ids: Optional[list[int]], token_ids: Optional[list[int]]) -> dict[str, int]:
    prompt, completion = len(prompt_token_ids or []), len(token_ids or [])
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def sequence(sandbox_id: str, records: Iterable[CallRecord]) -> TokenTrajectory:
    """The answered calls as one token sequence with a loss mask (see :class:`TokenTrajectory`)."""
    ids: list[int] = []
    mask: list[int] = []
    logprobs: list[Optional[float]] = []
    turns: list[TokenTurn] = []
    drift: Optional[TokenDrift] = None
    for record in records:
        if record.status != "answered":
            continue
        prompt, completion = record.prompt_token_ids, record.completion_token_ids
        if prompt is None or completion is None:
            drift = TokenDrift(index=record.index, reason="no token ids", position=len(ids))
            break
        if prompt[: len(ids)] != ids:
            at = next((i for i, (a, b) in enumerate(zip(prompt, ids)) if a != b), min(len(prompt), len(ids)))
            drift = TokenDrift(index=record.index, reason="prompt does not extend", position=at)
            break
        start = len(ids)
        ids += prompt[start:]
        mask += [0] * (len(prompt) - start)
        logprobs += [None] * (len(prompt) - start)
        completion_start = len(ids)
        ids += completion
        mask += [1] * len(completion)
        values = record.completion_logprobs
        logprobs += list(values) if values and len(values) == len(completion) else [None] * len(completion)
        turns.append(TokenTurn(index=record.index, prompt_start=start, completion_start=completion_start, end=len(ids)))
    return TokenTrajectory(
        sandbox_id=sandbox_id, token_ids=ids, loss_mask=mask, logprobs=logprobs, turns=turns, drift=drift
    )
