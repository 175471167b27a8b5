"""Whether an env's data and packages are here, from the catalog's `[[needs]]` rules.

A rule names a glob of ids, `what` they need, a `check` that tells whether it is installed
(`nltk:<resource>`, `module:<name>`, or `broken` for ids that cannot work), `offline = false`
when the env also fetches data at run time, and the `fix`.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from rock_envs.registry import EnvSpec, needs_rule


def _installed(check: str) -> bool:
    kind, _, arg = check.partition(":")
    if kind == "module":
        return importlib.util.find_spec(arg) is not None
    if kind == "nltk":
        try:
            import nltk

            nltk.data.find(arg)
        except (LookupError, ImportError):
            return False
        return True
    return False  # "broken": nothing local satisfies it


def _rule(spec: EnvSpec) -> dict[str, Any] | None:
    return needs_rule(spec.id, spec.entry_point) if spec.source in ("gem", "gymnasium") else None


def missing_requirement(spec: EnvSpec) -> str | None:
    """None when `spec` can be built here; otherwise what is missing and how to get it."""
    rule = _rule(spec)
    if rule is None or _installed(rule["check"]):
        return None
    return f"it needs {rule['what']}, which is not here. {rule.get('fix', '')}".strip()


def offline_ready(spec: EnvSpec) -> bool:
    """True when the env builds and steps with no network, given what is installed now."""
    rule = _rule(spec)
    if rule is None:
        return spec.needs is None
    return rule.get("offline", True) and _installed(rule["check"])
