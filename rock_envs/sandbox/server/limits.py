"""Caps on what one server holds: sandboxes and envs, per server and per token.

A request over a cap is refused at once with ``SandboxLimitError`` (HTTP 429) naming the cap and the
current count, so a busy server says no instead of dying slowly. Envs are counted as the client
declares them in the ``envs`` label of a sandbox (the remote backend does); the server never decodes
a worker's frames. Creates in flight count too, so a burst of concurrent requests cannot overshoot.
"""

from __future__ import annotations

import hashlib
import itertools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

from ..errors import InvalidRequestError, SandboxLimitError
from ..manager import SandboxManager
from ..models import SandboxSpec


@dataclass(frozen=True)
class Limits:
    """Caps for ``rock-envs serve``; ``None`` means no cap (the manager's own ``max_sandboxes`` still holds)."""

    max_sandboxes: Optional[int] = None
    """Sandboxes on this server, all tokens together."""
    max_envs: Optional[int] = None
    """Envs (declared in each sandbox's ``envs`` label) on this server, all tokens together."""
    max_sandboxes_per_token: Optional[int] = None
    """Sandboxes one bearer token may hold at once."""
    max_envs_per_token: Optional[int] = None
    """Envs one bearer token may hold at once."""


def token_id(authorization: str) -> str:
    """A short, non-secret name for the token of an ``Authorization`` header."""
    return hashlib.sha256(authorization.partition(" ")[2].strip().encode()).hexdigest()[:12]


def declared_envs(spec: SandboxSpec) -> int:
    value = spec.labels.get("envs", "0")
    try:
        envs = int(value)
    except ValueError:
        envs = -1
    if envs < 0:
        raise InvalidRequestError(f"`create`: label `envs` must be a count of envs (an int >= 0), got {value!r}.")
    return envs


class Quota:
    """The server's ledger: which token holds which sandbox and how many envs."""

    def __init__(self, limits: Limits, manager: SandboxManager | None = None):
        self.limits, self.manager = limits, manager  # a data replica has no manager, and creates nothing
        self.held: dict[str, tuple[str, int]] = {}  # sandbox id -> (token id, envs)
        self.reserved: dict[int, tuple[str, int]] = {}  # creates in flight
        self._tickets = itertools.count()

    def usage(self, token: str | None = None) -> tuple[int, int]:
        """(sandboxes, envs) held now, by everyone or by ``token`` (a token id)."""
        live = self.manager.sandboxes if self.manager is not None else {}
        for sid in [sid for sid in self.held if sid not in live]:
            del self.held[sid]  # deleted, reaped by TTL, or died
        rows = [*self.held.values(), *self.reserved.values()]
        if token is not None:
            rows = [row for row in rows if row[0] == token]
        return len(rows), sum(envs for _, envs in rows)

    @contextmanager
    def admit(self, authorization: str, spec: SandboxSpec) -> Iterator[dict[str, str]]:
        """Reserve room for one sandbox or raise 429; put its id in the yielded dict once created."""
        tok, envs = token_id(authorization), declared_envs(spec)
        checks = [
            (None, "", self.limits.max_sandboxes, self.limits.max_envs),
            (tok, " per token", self.limits.max_sandboxes_per_token, self.limits.max_envs_per_token),
        ]
        for who, scope, max_sandboxes, max_envs in checks:
            sandboxes, held_envs = self.usage(who)
            holder = "this server holds" if who is None else "this token holds"
            if max_sandboxes is not None and sandboxes + 1 > max_sandboxes:
                raise SandboxLimitError(
                    f"`create`: the cap on sandboxes{scope} is {max_sandboxes} and {holder} "
                    f"{sandboxes}; delete some, or raise it (`rock-envs serve "
                    f"--max-sandboxes{scope.replace(' ', '-')}`).",
                    cap="max_sandboxes" + scope.replace(" ", "_"),
                )
            if max_envs is not None and held_envs + envs > max_envs:
                raise SandboxLimitError(
                    f"`create`: the cap on envs{scope} is {max_envs} and {holder} {held_envs} "
                    f"(this sandbox asks for {envs} more); use fewer envs, or raise it "
                    f"(`rock-envs serve --max-envs{scope.replace(' ', '-')}`).",
                    cap="max_envs" + scope.replace(" ", "_"),
                )
        ticket = next(self._tickets)
        self.reserved[ticket] = (tok, envs)
        created: dict[str, str] = {}
        try:
            yield created
        finally:
            del self.reserved[ticket]
            if "id" in created:
                self.held[created["id"]] = (tok, envs)
