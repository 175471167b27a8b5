"""Mixed batches: the env ids and kwargs of every env of one `make_vec`, in env order.

`make_vec` takes one env id for every env, or a mix: a list of ids (env i is `ids[i]`), a dict
`{id: count}` (its envs in the dict's order), or one id with `env_kwargs=[{...}, ...]` (env i gets
`env_kwargs[i]`). `expand` turns any of them into one `(EnvSpec, kwargs)` per env; the spec
defaults of a mix (backend, image, cpus, memory) are read by `common_default`, except the images
of a docker mix, each env's own (`images_of`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rock_envs.core.errors import EnvArgumentError
from rock_envs.registry import EnvSpec
from rock_envs.registry import spec as find_spec

PerEnv = list[tuple[EnvSpec, dict[str, Any]]]


def _spec_of(item: Any) -> EnvSpec:
    return item if isinstance(item, EnvSpec) else find_spec(item)


def is_id_list(env_id: Any) -> bool:
    """A list or tuple of env ids or specs (not Gymnasium's `env_fns`, a list of callables)."""
    return (
        isinstance(env_id, (list, tuple)) and bool(env_id) and all(isinstance(item, (str, EnvSpec)) for item in env_id)
    )


def expand(env_id: Any, num_envs: int | None, env_kwargs: Any, kwargs: dict[str, Any]) -> PerEnv | None:
    """One `(spec, kwargs)` per env for a mixed batch (or per-env kwargs); None for one id and one
    kwargs dict (the plain case). `kwargs`: the call's extra keywords, which go to every env."""
    per_env_kwargs = isinstance(env_kwargs, (list, tuple))
    if isinstance(env_id, Mapping):
        specs: list[EnvSpec] = []
        for item, count in env_id.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise EnvArgumentError(
                    f"`make_vec({{...}})`: a dict maps each env id to its number of envs, a positive int; "
                    f"got {item!r}: {count!r}. E.g. `make_vec({{'game:Sokoban-v0-easy': 32, 'game:Sudoku-v0-easy': 32}})`."
                )
            specs += [_spec_of(item)] * count
    elif is_id_list(env_id):
        specs = [_spec_of(item) for item in env_id]
    elif isinstance(env_id, (list, tuple)) and any(isinstance(item, (str, EnvSpec)) for item in env_id):
        raise EnvArgumentError(
            "`make_vec([...])`: a list holds env ids (a mixed batch) or callables (Gymnasium's env_fns), "
            "not both; register the callable with `rock_envs.register(...)` and list its id."
        )
    elif per_env_kwargs and isinstance(env_id, (str, EnvSpec)):
        specs = [_spec_of(env_id)] * (num_envs if num_envs is not None else len(env_kwargs))
    else:
        if per_env_kwargs:
            raise EnvArgumentError(
                "`make_vec(..., env_kwargs=[...])`: per-env kwargs need env ids (an id, a list or a dict of "
                "them); bind the kwargs in each callable instead."
            )
        return None
    if num_envs is not None and num_envs != len(specs):
        raise EnvArgumentError(
            f"`make_vec`: num_envs={num_envs} but the env ids give {len(specs)} envs; leave num_envs out "
            "(it is the number of ids) or give one id per env."
        )
    if per_env_kwargs:
        if len(env_kwargs) != len(specs):
            raise EnvArgumentError(
                f"`make_vec(..., env_kwargs=[...])`: expected one kwargs dict per env ({len(specs)}), "
                f"got {len(env_kwargs)}."
            )
        return [(s, {**kwargs, **(k or {})}) for s, k in zip(specs, env_kwargs)]
    shared = {**kwargs, **(env_kwargs or {})}
    return [(s, dict(shared)) for s in specs]


def common_default(per_env: PerEnv, field: str) -> Any:
    """The spec default `field` of a mix: the one value its specs give (None if none gives one);
    `cpus`, `memory` and `worker_threads` the largest (a worker hosting several must fit the largest)."""
    values = [getattr(s, field) for s, _ in per_env if getattr(s, field) is not None]
    distinct = list(dict.fromkeys(values))
    if len(distinct) <= 1:
        return distinct[0] if distinct else None
    if field in ("cpus", "worker_threads"):
        return max(distinct)
    if field == "memory":
        return max(distinct, key=_bytes)
    owners = {value: next(s.id for s, _ in per_env if getattr(s, field) == value) for value in distinct}
    named = ", ".join(f"{env!r} has {value!r}" for value, env in list(owners.items())[:3])
    raise EnvArgumentError(
        f"`make_vec`: the envs of this batch have different `{field}` defaults ({named}); pass "
        f"`{field}=...` for all of them, or make one vector env per {field}."
    )


def images_of(per_env: PerEnv) -> list[str | None] | None:
    """Env i's spec image, where the specs of a mix name two or more (else None: one image serves)."""
    images = [s.image for s, _ in per_env]
    return images if len({image for image in images if image is not None}) > 1 else None


def _bytes(value: int | str) -> int:
    if isinstance(value, int):
        return value
    units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    text = value.strip().lower().rstrip("b")
    return int(float(text[:-1]) * units[text[-1]]) if text and text[-1] in units else int(float(text))


def distinct_ids(per_env: Sequence[tuple[EnvSpec, Any]]) -> list[str]:
    return list(dict.fromkeys(s.id for s, _ in per_env))


__all__ = ["PerEnv", "common_default", "distinct_ids", "expand", "images_of", "is_id_list"]
