"""Env id -> EnvSpec.

An id resolves from the first source that knows it, in this order:

1. run-time registrations (`rock_envs.register`);
2. installed packages, through the entry-point group `rock_envs.envs`: each entry point names a
   callable that returns an iterable of `EnvSpec`s or of dicts of `EnvSpec` fields;
3. catalog files (`*.toml`) shipped in the wheel (the repo's `registry/` folder), plus any folder
   listed in `ROCK_ENVS_CATALOG_PATH` (os.pathsep-separated);
4. GEM's registry (ids of the form `category:Name`, e.g. `game:Sokoban-v0-easy`);
5. Gymnasium's registry (`CartPole-v1`).
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib
import inspect
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable

from rock_envs.core.errors import EnvArgumentError, MissingDependencyError, UnknownEnvError
from rock_envs.core.spec import EnvSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENTRY_POINT_GROUP = "rock_envs.envs"
SOURCES = ("runtime", "plugin", "catalog", "gem", "gymnasium")


_runtime: dict[str, EnvSpec] = {}


def register(
    env_id: str,
    entry_point: str | Callable[..., Any],
    kwargs: dict[str, Any] | None = None,
    *,
    override: bool = False,
    **defaults: Any,
) -> EnvSpec:
    """Register `env_id` for this process. `defaults` are other `EnvSpec` fields (backend, image...)."""
    if not isinstance(env_id, str) or not env_id:
        raise EnvArgumentError(f"`rock_envs.register`: expected a non-empty str id, got {env_id!r}.")
    if env_id in _runtime and not override:
        raise EnvArgumentError(
            f"`rock_envs.register`: {env_id!r} is already registered (from {_runtime[env_id].source}); "
            "pass override=True to replace it."
        )
    unknown = set(defaults) - _spec_fields()
    if unknown:
        raise EnvArgumentError(
            f"`rock_envs.register({env_id!r})`: unknown spec field(s) {sorted(unknown)}; "
            f"expected some of {sorted(_spec_fields() - {'id', 'entry_point', 'kwargs', 'source'})}."
        )
    spec = EnvSpec(id=env_id, entry_point=entry_point, kwargs=dict(kwargs or {}), source="runtime", **defaults)
    _runtime[env_id] = spec
    return spec


def unregister(env_id: str) -> None:
    _runtime.pop(env_id, None)


def spec(env_id: str) -> EnvSpec:
    """The `EnvSpec` of `env_id`, from the first source that knows it (see the module docstring)."""
    if not isinstance(env_id, str):
        raise EnvArgumentError(f"`rock_envs.spec`: expected an env id (str), got {type(env_id).__name__}.")
    found = _runtime.get(env_id) or _plugins().get(env_id) or _catalog().get(env_id)
    if found is None and ":" in env_id:
        found = _gem().get(env_id)
    if found is None:
        found = _gymnasium().get(env_id)
    if found is None:
        raise UnknownEnvError(env_id, difflib.get_close_matches(env_id, list(_all_ids()), n=3, cutoff=0.5))
    return found


def list_envs(pattern: str = "*") -> list[EnvSpec]:
    """Every known spec whose id matches the glob `pattern`, first source winning, sorted by id."""
    merged: dict[str, EnvSpec] = {}
    for source in reversed(_sources()):
        merged.update(source)
    return [merged[i] for i in sorted(merged) if fnmatch.fnmatchcase(i, pattern)]


def refresh() -> None:
    """Forget what was read from plugins and catalog files (after installing a plugin, say)."""
    for cached in (_plugins, _catalog_files, _catalog, _gem, _gymnasium):
        cached.cache_clear()


def _all_ids() -> Iterable[str]:
    for source in _sources():
        yield from source


def _sources() -> list[dict[str, EnvSpec]]:
    return [_runtime, _plugins(), _catalog(), _gem(), _gymnasium()]


def _spec_fields() -> set[str]:
    return {f for f in EnvSpec.__dataclass_fields__}


@functools.cache
def _plugins() -> dict[str, EnvSpec]:
    from importlib.metadata import entry_points

    found: dict[str, EnvSpec] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        package = ep.dist.name if ep.dist is not None else ep.module
        for item in ep.load()():
            s = item if isinstance(item, EnvSpec) else EnvSpec(**item)
            found.setdefault(s.id, replace(s, source=f"plugin:{package}"))
    return found


def catalog_dirs() -> list[Path]:
    here = Path(__file__).parent
    shipped = here / "catalog"  # inside the wheel
    dirs = [shipped if shipped.is_dir() else here.parent / "registry"]  # editable install: the repo's
    dirs += [Path(p) for p in os.environ.get("ROCK_ENVS_CATALOG_PATH", "").split(os.pathsep) if p]
    return [d for d in dirs if d.is_dir()]


@functools.cache
def _catalog_files() -> tuple[tuple[str, dict[str, Any]], ...]:
    out = []
    for d in catalog_dirs():
        for path in sorted(d.glob("*.toml")):
            with path.open("rb") as f:
                out.append((path.name, tomllib.load(f)))
    return tuple(out)


@functools.cache
def _catalog() -> dict[str, EnvSpec]:
    found: dict[str, EnvSpec] = {}
    for name, doc in _catalog_files():
        for entry in doc.get("env", []):
            try:
                s = EnvSpec(**{"source": f"catalog:{name}", **entry})
            except TypeError as e:
                raise EnvArgumentError(f"catalog file {name!r}: bad entry {entry.get('id')!r}: {e}") from e
            found.setdefault(s.id, s)
    return found


def needs_rule(env_id: str, entry_point: Any = None) -> dict[str, Any] | None:
    """The first `[[needs]]` rule of the catalog files matching `env_id` (or its entry point)."""
    entry = (
        entry_point
        if isinstance(entry_point, str)
        else f"{getattr(entry_point, '__module__', '')}:{getattr(entry_point, '__qualname__', '')}"
    )
    for _, doc in _catalog_files():
        for rule in doc.get("needs", []):
            if ("pattern" in rule and fnmatch.fnmatchcase(env_id, rule["pattern"])) or (
                "entry_point" in rule and fnmatch.fnmatchcase(entry, rule["entry_point"])
            ):
                return rule
    return None


def _needs_for(env_id: str, entry_point: Any) -> str | None:
    rule = needs_rule(env_id, entry_point)
    return rule["what"] if rule else None


@functools.cache
def _gem() -> dict[str, EnvSpec]:
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    import gem.envs  # noqa: F401  (registers GEM's ids)
    from gem.envs.registration import ENV_REGISTRY

    # `import gem` calls logging.basicConfig(INFO); keep the caller's logging as it was.
    root.handlers[:] = handlers
    root.setLevel(level)
    return {
        i: EnvSpec(
            id=i, entry_point=s.entry_point, kwargs=dict(s.kwargs), source="gem", needs=_needs_for(i, s.entry_point)
        )
        for i, s in ENV_REGISTRY.items()
    }


@functools.cache
def _gymnasium() -> dict[str, EnvSpec]:
    import gymnasium

    return {
        i: EnvSpec(
            id=i,
            entry_point=s.entry_point,  # type: ignore[arg-type]  # registered Gymnasium ids have one
            kwargs={},
            source="gymnasium",
            vector_entry_point=s.vector_entry_point,
            needs=_needs_for(i, s.entry_point),
            nondeterministic=s.nondeterministic,
        )
        for i, s in gymnasium.envs.registry.items()
    }


def load_entry_point(spec: EnvSpec) -> Callable[..., Any]:
    ep = spec.entry_point
    if callable(ep):
        return ep
    module_name, _, attr = ep.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except ImportError as e:
        raise MissingDependencyError(
            f"`rock_envs.make({spec.id!r})`: its entry point {ep!r} cannot be imported ({e}). "
            "Install the package that provides it."
        ) from e
    except AttributeError as e:
        raise EnvArgumentError(f"`rock_envs.make({spec.id!r})`: entry point {ep!r} not found: {e}.") from e
    return obj


def check_kwargs(spec: EnvSpec, factory: Callable[..., Any], kwargs: dict[str, Any], extra: Iterable[str] = ()) -> None:
    """Raise `EnvArgumentError` naming the argument when `factory` cannot take `kwargs`."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    # `**kwargs` takes anything; `**_` (GEM's games) silently drops extras, so those get checked.
    if any(p.kind is inspect.Parameter.VAR_KEYWORD and not n.startswith("_") for n, p in params.items()):
        return
    allowed = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} | set(extra)
    bad = sorted(set(kwargs) - allowed)
    if bad:
        raise EnvArgumentError(
            f"`rock_envs.make({spec.id!r})`: unexpected argument(s) {bad}; this env takes {sorted(allowed - {'self'})}."
        )
