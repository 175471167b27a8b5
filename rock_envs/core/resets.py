"""One way to call an env's `reset`, for every env rock-envs hosts."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable


@functools.lru_cache(maxsize=4096)
def _takes_options(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "options" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def call_reset(reset: Callable[..., Any], seed: int | None, options: dict[str, Any] | None) -> Any:
    """`reset(seed=..., options=...)` (an env's reset) as the env takes it. Gymnasium always passes `options`
    (None included), and an env may require it; an older env (as SB3 calls them) takes no `options`,
    so it gets one only when there are some."""
    if options is not None or _takes_options(getattr(reset, "__func__", reset)):
        return reset(seed=seed, options=options)
    return reset(seed=seed)
