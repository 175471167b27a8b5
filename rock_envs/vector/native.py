"""`make_vec(..., vectorize=...)`: whether each worker hosts one native vector env for its block.

"per_env" (default): one env object per slot. "native": the spec's native vector implementation
(`EnvSpec.vector_entry_point`; Gymnasium's for its ids), one per worker, or an error saying why it
cannot be. "auto": native where it can be, per env elsewhere; `venv.vectorize` says which was used.
"""

from __future__ import annotations

from typing import Any, Literal

from gymnasium.vector import AutoresetMode

from rock_envs.core.errors import EnvArgumentError
from rock_envs.registry import EnvSpec, load_entry_point

Vectorize = Literal["per_env", "native", "auto"]
VECTORIZE = ("per_env", "native", "auto")


def native_autoreset_mode(spec: EnvSpec) -> AutoresetMode:
    """The autoreset mode of the spec's native vector env (Gymnasium's default, next_step, when its
    entry point does not say)."""
    assert spec.vector_entry_point is not None
    entry = load_entry_point(EnvSpec(spec.id, spec.vector_entry_point))
    mode = (getattr(entry, "metadata", None) or {}).get("autoreset_mode", AutoresetMode.NEXT_STEP)
    return mode if isinstance(mode, AutoresetMode) else AutoresetMode(mode)


def why_not_native(spec: EnvSpec | None, mixed: bool, mode: AutoresetMode, record: Any, restore: str) -> str | None:
    """Why these envs cannot be hosted natively (None: they can)."""
    if spec is None or mixed:
        return "a native vector env needs one registered env id and one kwargs dict (not a callable or a mix)"
    if spec.vector_entry_point is None:
        return f"{spec.id!r} has no native vector implementation (its spec has no vector_entry_point)"
    native_mode = native_autoreset_mode(spec)
    if native_mode is not mode:
        return (
            f"{spec.id!r}'s native vector env autoresets in {native_mode.name.lower()} mode, "
            f"not {mode.name.lower()} (pass autoreset_mode={native_mode.name.lower()!r})"
        )
    if record is not None:
        return "trajectory records need one env object per slot"
    if restore == "snapshot":
        return "restore='snapshot' needs one env object per slot"
    return None


def use_native(
    vectorize: Any, spec: EnvSpec | None, mixed: bool, mode: AutoresetMode, record: Any, restore: str
) -> bool:
    """Whether `make_vec` hosts native vector envs; raises where "native" was asked for and cannot be."""
    if vectorize not in VECTORIZE:
        raise EnvArgumentError(f"`make_vec`: vectorize must be one of {list(VECTORIZE)}, got {vectorize!r}.")
    if vectorize == "per_env":
        return False
    why = why_not_native(spec, mixed, mode, record, restore)
    if why is not None and vectorize == "native":
        raise EnvArgumentError(
            f"`make_vec(..., vectorize='native')`: {why}; use vectorize='auto' (native where it can be) or 'per_env'."
        )
    return why is None


__all__ = ["VECTORIZE", "Vectorize", "use_native", "why_not_native"]
