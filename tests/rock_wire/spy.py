"""Which ROCK routes rl-rock's client calls: a recorder around its HTTP helper (the client itself unchanged)."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import pytest


@contextlib.contextmanager
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The route names (``start_async``, ``get_status``, ...) of every call made inside the block."""
    from rock.utils.http import HttpUtils

    seen: list[str] = []
    for name in ("get", "post", "post_multipart"):
        original = getattr(HttpUtils, name)

        async def recorded(url: str, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            seen.append(url.split("?")[0].rsplit("/", 1)[-1])
            return await _original(url, *args, **kwargs)

        monkeypatch.setattr(HttpUtils, name, staticmethod(recorded))
    yield seen
