"""``SandboxConfig``: what a sandbox is (the :class:`SandboxSpec` fields) plus where to make it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from pydantic import Field

from .models import SandboxSpec


def default_token_file() -> Path:
    """Where ``rock-envs serve`` writes its generated token and the SDK looks for it."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(os.environ.get("ROCK_ENVS_TOKEN_FILE") or os.path.join(base, "rock-envs", "token"))


class SandboxConfig(SandboxSpec):
    """A sandbox spec plus the client's own settings.

    ``base_url=None`` runs the sandbox manager embedded in this process; a URL talks to
    ``rock-envs serve``. Both give the same API and the same behaviour.
    """

    base_url: Optional[str] = None
    """``http://127.0.0.1:8080`` for a server; ``None`` for embedded. With ``data_urls``: the control plane."""
    data_urls: Optional[list[str]] = None
    """A split server's data replicas (``rock-envs serve --role data``): every call on the sandbox goes to
    one of them (its own by hashing its id; the next if it is away), lifecycle calls to ``base_url``."""
    token: Optional[str] = None
    """Bearer token for the server; ``None`` reads ``ROCK_ENVS_TOKEN`` or the token file."""
    request_timeout: float = Field(30.0, gt=0)
    """Seconds an HTTP call may take beyond the command's own timeout."""
    startup_timeout: float = Field(60.0, gt=0)
    """Seconds ``start()`` waits for the sandbox to be ready."""
    runtime_dir: Optional[str] = None
    """Embedded mode: where sandboxes live (default ``/run/rock-envs`` for root, else a temp dir)."""
    pool: Optional[str] = None
    """Take the sandbox from this warm pool (see :class:`SandboxPool`): the pool's spec applies, with
    this config's ``labels``, ``ttl`` and ``lease``."""
    lease: Optional[float] = Field(60.0, gt=0, le=24 * 3600)
    """Owner lease in seconds, renewed by the handle while it is open: if this process vanishes, its
    sandboxes go within this time. ``None``: only the idle ``ttl`` (and, embedded, this process's exit)."""

    def spec(self) -> SandboxSpec:
        return SandboxSpec(**{name: getattr(self, name) for name in SandboxSpec.model_fields})

    def resolve_token(self) -> str | None:
        if self.token:
            return self.token
        if os.environ.get("ROCK_ENVS_TOKEN"):
            return os.environ["ROCK_ENVS_TOKEN"]
        path = default_token_file()
        return path.read_text().strip() if path.exists() else None
