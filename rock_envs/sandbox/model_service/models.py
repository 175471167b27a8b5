"""The ModelService's typed surface: a sandbox's settings, one recorded call, the trainer's requests."""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

Endpoint = Literal["chat.completions", "completions", "responses", "messages"]
"""Which API a call used."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelServiceSpec(_Model):
    """How a sandbox's OpenAI-compatible endpoint answers (``SandboxSpec.model_service``)."""

    mode: Literal["trainer", "proxy"] = "trainer"
    """``trainer``: each call waits for the trainer's answer; ``proxy``: forwarded to ``upstream_url``."""
    upstream_url: Optional[str] = None
    """Proxy mode: the upstream's base URL, e.g. ``http://127.0.0.1:8000/v1``."""
    upstream_urls: list[str] = Field(default_factory=list)
    """Proxy mode: several upstreams. A sandbox's calls (or those with one ``session`` header) stick
    to one of them; one that fails is skipped and the call retried once on the next."""
    upstream_api_key: Optional[str] = None
    """Proxy mode: the key sent upstream (the sandbox never sees it; it is shown in the spec)."""
    timeout: float = Field(300.0, gt=0, le=24 * 3600)
    """Seconds a call waits for the trainer (or the upstream) before the agent gets a 504."""
    max_pending: int = Field(32, ge=1, le=100_000)
    """Calls of one sandbox waiting at once; more get a 429 (an agent flooding calls)."""
    max_calls: int = Field(100_000, ge=1)
    """Calls one sandbox may make in its life; more get a 429."""
    port: int = Field(0, ge=0, le=65535)
    """The loopback port inside the sandbox; 0 picks a free one (``OPENAI_BASE_URL`` says which)."""
    trajectory_id: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    """The id this sandbox's trajectory is kept under (``None``: the sandbox's own id). The id of an
    earlier sandbox resumes its rollout, even one from before a server restart: its recorded calls
    are read back and come first, and this sandbox's calls are appended after them, so
    ``trajectory(<that id>)`` (or this sandbox's) reads the whole rollout. One live sandbox per id."""
    capture_tokens: bool = True
    """Proxy mode: ask the upstream for token ids and logprobs (vLLM's ``return_token_ids``,
    ``logprobs``, ``return_tokens_as_token_ids``) and record them; the agent's answer is stripped of
    what it did not ask for. Turn off for an upstream that refuses unknown fields."""

    @model_validator(mode="after")
    def _upstream(self) -> ModelServiceSpec:
        if self.mode == "proxy" and not self.upstream_url and not self.upstream_urls:
            raise ValueError("model_service mode 'proxy' needs `upstream_url`, e.g. 'http://host:8000/v1'")
        return self

    def upstreams(self) -> list[str]:
        return [*([self.upstream_url] if self.upstream_url else []), *self.upstream_urls]


class CallRecord(_Model):
    """One call of a sandbox's agent and its answer, as kept in the trajectory."""

    call_id: str
    sandbox_id: str
    index: int
    """Position in the sandbox's trajectory, from 0."""
    endpoint: Endpoint
    request: dict[str, Any]
    """The request body, as the agent sent it."""
    stream: bool = False
    status: Literal[
        "pending",
        "answered",
        "bad_request",
        "timeout",
        "upstream_error",
        "sandbox_removed",
        "trainer_error",
        "cancelled",
    ] = "pending"
    """``answered``; the agent's fault: ``bad_request`` (refused upstream), ``cancelled`` (it hung up);
    infra: ``timeout`` (trainer or upstream), ``upstream_error`` (unreachable, 5xx, a broken stream),
    ``sandbox_removed`` (the sandbox died or was removed while the call waited), ``trainer_error``
    (``call.fail``). See ``model_service.infra``."""
    response: Optional[dict[str, Any]] = None
    """The whole completion the agent got (rebuilt from the chunks when streamed)."""
    error: Optional[dict[str, Any]] = None
    """The OpenAI-style error the agent got, if any."""
    usage: Optional[dict[str, Any]] = None
    """Token usage, when the trainer or the upstream gave it."""
    model: Optional[str] = None
    """The model the agent asked for (the answer's, when it names one)."""
    finish_reason: Optional[str] = None
    """Why the answer ended: ``stop``, ``length``, ``tool_calls``, ... (as chat completions say it)."""
    sampling: dict[str, Any] = Field(default_factory=dict)
    """The sampling parameters of the request (temperature, top_p, max_tokens, stop, seed, ...)."""
    prompt_token_ids: Optional[list[int]] = None
    """The exact prompt tokens the policy saw (from ``respond(prompt_token_ids=)`` or the upstream)."""
    completion_token_ids: Optional[list[int]] = None
    """The exact tokens the policy sampled (from ``respond(token_ids=)`` or the upstream)."""
    completion_logprobs: Optional[list[float]] = None
    """The log-probability of each sampled token, one per ``completion_token_ids``."""
    upstream: Optional[str] = None
    """Proxy mode: the upstream that answered (or failed last)."""
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    """Proxy mode: the upstreams tried before it, each ``{"upstream", "error"}``."""
    created_at: float
    answered_at: Optional[float] = None


class NextCallsRequest(_Model):
    sandbox_id: Optional[str] = None
    """Only this sandbox's calls; ``None``: every sandbox's."""
    max_calls: int = Field(64, ge=1, le=4096)
    timeout: float = Field(10.0, ge=0, le=60)
    """Seconds to wait for a first call; an empty list after it."""


class NextCalls(_Model):
    calls: list[CallRecord]


class RespondRequest(_Model):
    response: Union[str, dict[str, Any], None] = None
    """The answer: text, an assistant message, or a whole ``chat.completion`` / ``text_completion`` object."""
    usage: Optional[dict[str, Any]] = None
    token_ids: Optional[list[int]] = None
    """The tokens the policy sampled for this answer (recorded, never sent to the agent)."""
    logprobs: Optional[list[float]] = None
    """One log-probability per ``token_ids``."""
    prompt_token_ids: Optional[list[int]] = None
    """The prompt tokens the policy saw."""
    error: Optional[str] = None
    """Instead of an answer: fail the call with this message (the agent gets a 500)."""


class RespondItem(RespondRequest):
    call_id: str


class RespondMany(_Model):
    """Answers to several waiting calls in one request (what the SDK sends when answers come together)."""

    answers: list[RespondItem] = Field(max_length=4096)


class RespondOutcome(_Model):
    """How one answer of a :class:`RespondMany` went: no ``error_type`` means it landed."""

    call_id: str
    error_type: Optional[str] = None
    """The error's class name (as the single ``respond`` route would have raised it)."""
    message: Optional[str] = None


class RespondedMany(_Model):
    outcomes: list[RespondOutcome]
    """One per answer, in order."""


class Trajectory(_Model):
    sandbox_id: str
    records: list[CallRecord]


class TokenTurn(_Model):
    """Where one answered call sits in a :class:`TokenTrajectory`."""

    index: int
    """The call's ``CallRecord.index``."""
    prompt_start: int
    """Where the part of its prompt new to the sequence starts (loss mask 0 from here)."""
    completion_start: int
    """Where its sampled tokens start (loss mask 1 from here)."""
    end: int
    """One past its last sampled token."""


class TokenDrift(_Model):
    """The turn where the trajectory stops being one token sequence."""

    index: int
    """The ``CallRecord.index`` of the call whose prompt does not extend what came before."""
    reason: Literal["prompt does not extend", "no token ids"]
    position: int
    """The first token position where its prompt differs from the sequence so far (or its length)."""


class TokenTrajectory(_Model):
    """A sandbox's answered calls as one token sequence, for training on exactly what was sampled.

    Each call's prompt tokens must start with the previous call's prompt + completion; the new part
    of the prompt is context (loss mask 0), the completion is the policy's (loss mask 1). At the first
    call where that fails (``drift``), the sequence stops: training on re-tokenized text is the
    mismatch that breaks RL. Calls that failed or were never answered are not turns.
    """

    sandbox_id: str
    token_ids: list[int]
    loss_mask: list[int]
    """1 for tokens the policy sampled, 0 for everything else."""
    logprobs: list[Optional[float]]
    """The sampled tokens' log-probabilities where recorded; ``None`` at context tokens."""
    turns: list[TokenTurn]
    drift: Optional[TokenDrift] = None
    """Set when the calls do not form one sequence; ``turns`` then ends before this call."""
