"""Sticky upstreams: the calls of one sandbox (or one ``session`` header) go to the same upstream,
so its prefix cache stays warm; one that fails is skipped for a while and the call tried once more
on the next.

The choice is rendezvous hashing (highest ``sha1(key + url)``): stable for a key while the list of
upstreams stays the same, and when one is skipped only its keys move, each to its own next choice.
"""

from __future__ import annotations

import hashlib
import time

SKIP_FOR = 30.0
"""Seconds an upstream that failed is passed over (unless every upstream is)."""


class UpstreamRouter:
    def __init__(self, skip_for: float = SKIP_FOR):
        self.skip_for = skip_for
        self.down: dict[str, float] = {}

    def order(self, urls: list[str], key: str) -> list[str]:
        """``urls`` in the order a call with ``key`` tries them: its own first, skipped ones last."""
        ranked = sorted(urls, key=lambda url: hashlib.sha1(f"{key}\0{url}".encode()).digest(), reverse=True)
        now = time.monotonic()
        return [u for u in ranked if self.down.get(u, 0.0) <= now] + [u for u in ranked if self.down.get(u, 0.0) > now]

    def failed(self, url: str) -> None:
        self.down[url] = time.monotonic() + self.skip_for

    def worked(self, url: str) -> None:
        self.down.pop(url, None)
