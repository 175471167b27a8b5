"""Infra failures told apart from agent failures, so a trainer never learns from a broken rollout.

A rollout failed because of infrastructure when its sandbox did not start or died, a worker was
restarted, a model call timed out or its upstream failed, or the reward check could not run; it
failed because of the agent when the agent sent a bad request, took an invalid action or wrote code
that does not pass. Infra failures carry ``{"phase", "type", "message"}`` (``info["infra_error"]``);
a trainer masks those rollouts out of its batch and runs them again.

    phase   start | exec | model | worker | verify
"""

from __future__ import annotations

from typing import Any, Iterable, Literal, Optional

from .models import CallRecord

Phase = Literal["start", "exec", "model", "worker", "verify"]
INFRA_STATUSES = frozenset({"timeout", "upstream_error", "sandbox_removed", "trainer_error"})
"""The ``CallRecord.status`` values that are the infrastructure's fault; ``bad_request`` (the agent's
request refused upstream) and ``cancelled`` (the agent hung up) are the agent's."""


def infra_error(phase: Phase, type_: str, message: str) -> dict[str, str]:
    return {"phase": phase, "type": type_, "message": message[:2000]}


def from_exception(phase: Phase, exc: BaseException) -> dict[str, str]:
    return infra_error(phase, type(exc).__name__, str(exc))


def call_infra_error(record: CallRecord) -> Optional[dict[str, str]]:
    """The call's failure as an infra error, or ``None`` (answered, pending, or the agent's fault)."""
    if record.status not in INFRA_STATUSES:
        return None
    message = str((record.error or {}).get("message") or record.status)
    return infra_error("model", record.status, f"call {record.index} ({record.endpoint}): {message}")


def trajectory_infra_error(records: Iterable[CallRecord]) -> Optional[dict[str, str]]:
    """The first infra failure among a rollout's calls, or ``None``."""
    for record in records:
        found = call_infra_error(record)
        if found is not None:
            return found
    return None


def status_of(error: dict[str, Any], http_status: int) -> str:
    """A failed call's ``CallRecord.status`` from the error its agent got."""
    kind, code = error.get("type"), error.get("code")
    if http_status == 504 or kind == "timeout":
        return "timeout"
    if kind == "sandbox_removed" or http_status == 410:
        return "sandbox_removed"
    if kind == "trainer_error":
        return "trainer_error"
    if (
        http_status >= 500
        or http_status == 429
        or kind == "upstream_error"
        or code in ("upstream_unreachable", "upstream_timeout")
    ):
        return "upstream_error"
    return "bad_request"
