"""The ModelService's typed surface: a sandbox's settings, one recorded call, the trainer's requests."""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelServiceSpec(_Model):
    """How a sandbox's OpenAI-compatible endpoint answers (``SandboxSpec.model_service``)."""

    mode: Literal["trainer", "proxy"] = "trainer"
    """``trainer``: each call waits for the trainer's answer; ``proxy``: forwarded to ``upstream_url``."""
    upstream_url: Optional[str] = None
    """Proxy mode: the upstream's base URL, e.g. ``http://127.0.0.1:8000/v1``."""
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

    @model_validator(mode="after")
    def _upstream(self) -> ModelServiceSpec:
        if self.mode == "proxy" and not self.upstream_url:
            raise ValueError("model_service mode 'proxy' needs `upstream_url`, e.g. 'http://host:8000/v1'")
        return self


class CallRecord(_Model):
    """One call of a sandbox's agent and its answer, as kept in the trajectory."""

    call_id: str
    sandbox_id: str
    index: int
    """Position in the sandbox's trajectory, from 0."""
    endpoint: Literal["chat.completions", "completions"]
    request: dict[str, Any]
    """The OpenAI request body, as the agent sent it."""
    stream: bool = False
    status: Literal["pending", "answered", "error", "timeout", "cancelled"] = "pending"
    response: Optional[dict[str, Any]] = None
    """The whole completion the agent got (rebuilt from the chunks when streamed)."""
    error: Optional[dict[str, Any]] = None
    """The OpenAI-style error the agent got, if any."""
    usage: Optional[dict[str, Any]] = None
    """Token usage, when the trainer or the upstream gave it."""
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
    """The answer: text, or a whole ``chat.completion`` / ``text_completion`` object."""
    usage: Optional[dict[str, Any]] = None
    error: Optional[str] = None
    """Instead of an answer: fail the call with this message (the agent gets a 500)."""


class Trajectory(_Model):
    sandbox_id: str
    records: list[CallRecord]
