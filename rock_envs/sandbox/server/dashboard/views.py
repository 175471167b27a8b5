"""The rows the dashboard's API returns: plain dicts of what the manager, hub, relay and GEM envs hold."""

from __future__ import annotations

import time
from typing import Any

from ...models import PoolStats

RECENT_CALLS = 50  # model calls per sandbox shown on the ModelService page (the JSONL has them all)
MAX_FRAME = 512 * 512 * 3  # array observations larger than this are described, not sent


def totals(histogram: Any, **labels: str) -> dict[str, float]:
    """A histogram's count and sum over every label set matching ``labels``."""
    count = total = 0.0
    for family in histogram.collect():
        for sample in family.samples:
            if any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            if sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
    return {"count": count, "sum": total}


def pool_row(stats: PoolStats) -> dict[str, Any]:
    return {
        "name": stats.name,
        "size": stats.size,
        "ready": stats.ready,
        "starting": stats.starting,
        "claimed": stats.claimed,
        "claims": stats.claims,
        "misses": stats.misses,
    }


def sandbox_row(entry: Any, now: float, usage: dict[str, float]) -> dict[str, Any]:
    spec = entry.spec
    ttl_left = max(0.0, spec.ttl - (now - entry.last_used_at)) if spec.ttl and entry.busy == 0 else None
    return {
        "id": entry.id,
        "state": entry.status,
        "runtime": spec.runtime,
        "image": spec.image or "(host)",
        "age": now - entry.created_at,
        "idle": 0.0 if entry.busy else now - entry.last_used_at,
        "ttl_left": ttl_left,
        "cpu": usage.get("cpu"),
        "memory": usage.get("memory"),
        "pids": usage.get("pids"),
        "sessions": None,
        "jobs": None,
        "pool": entry.pool,
        "labels": dict(spec.labels),
    }


def model_totals(hub: Any) -> dict[str, int]:
    boxes = list(hub.boxes.values())
    return {
        "pending": sum(box.waiting for box in boxes),
        "unclaimed": sum(1 for p in list(hub.pending.values()) if not p.claimed),
        "calls": sum(len(box.records) for box in boxes),
    }


def model_page(hub: Any) -> dict[str, Any]:
    rows = []
    books = [(sid, box.records, box.waiting, box.spec.mode, True) for sid, box in list(hub.boxes.items())]
    books += [(sid, records, 0, None, False) for sid, records in list(hub.retired.items())]
    for sid, records, waiting, mode, live in books:
        rows.append(
            {
                "sandbox_id": sid,
                "live": live,
                "mode": mode,
                "calls": len(records),
                "waiting": waiting,
                "recent": [_call(r) for r in records[-RECENT_CALLS:]],
            }
        )
    return {"sandboxes": rows, **model_totals(hub)}


def _call(record: Any) -> dict[str, Any]:
    answer = None
    if record.response:
        choices = record.response.get("choices") or [{}]
        first = choices[0] if choices else {}
        answer = (first.get("message") or {}).get("content") if "message" in first else first.get("text")
    return {
        "call_id": record.call_id,
        "index": record.index,
        "endpoint": record.endpoint,
        "status": record.status,
        "request": record.request,
        "answer": answer,
        "error": record.error,
        "seconds": (record.answered_at - record.created_at) if record.answered_at else None,
    }


def relay_totals(relay: Any) -> dict[str, int]:
    return {
        "channels": relay.channels,
        "frames_in": relay.frames_in,
        "frames_out": relay.frames_out,
        "bytes_in": relay.bytes_in,
        "bytes_out": relay.bytes_out,
        "restarts": relay.restarts,
    }


def channel_rows(relay: Any) -> list[dict[str, Any]]:
    now = time.monotonic()
    rows = []
    for channel in list(relay.open.values()):
        rows.append(
            {
                "key": channel.key,
                "sandbox_id": channel.entry.id,
                "envs": channel.entry.spec.labels.get("envs"),
                "restarts": relay.restarts_of(channel.entry.id),
                "frames_in": channel.frames_in,
                "frames_out": channel.frames_out,
                "seconds": now - channel.opened_at,
            }
        )
    return rows


def gem_row(gem_id: str, env: Any) -> dict[str, Any]:
    return {
        "id": gem_id,
        "env_id": env.env_id,
        "steps": env.steps,
        "idle": time.monotonic() - env.last_used,
        "observation": observation(env.last_obs),
        "board": _board(env.last_info),
        "reward": env.last_reward,
    }


def _board(info: dict[str, Any]) -> str | None:
    """A GEM text env's current state: its ``suffix`` (for Sokoban, the board as it is now)."""
    suffix = info.get("suffix") if isinstance(info, dict) else None
    return suffix if isinstance(suffix, str) else None


def observation(obs: Any) -> dict[str, Any]:
    """Text as text; an image (H x W x 3 uint8) as rows of pixels for the page's canvas; else a repr."""
    if obs is None:
        return {"kind": "none"}
    if isinstance(obs, str):
        return {"kind": "text", "text": obs}
    shape = getattr(obs, "shape", None)
    if shape is not None and len(shape) == 3 and shape[2] in (3, 4) and obs.size <= MAX_FRAME:
        return {"kind": "image", "width": int(shape[1]), "height": int(shape[0]), "pixels": obs[:, :, :3].tolist()}
    return {"kind": "text", "text": repr(obs)[:4000]}
