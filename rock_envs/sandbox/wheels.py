"""Wheels for images built offline: the project's requirements, pinned to this venv's versions, built
once into a cached wheelhouse (``~/.cache/rock-envs``, ``ROCK_ENVS_CACHE`` moves it), and the small
helpers image builds share (progress, a locked cache folder, a command that must succeed)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Iterable, Iterator

from rock_envs.core.errors import ImageBuildError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib


def say(msg: str) -> None:
    # Progress goes to stderr so that stdout carries only the tag (for `export X=$(...)`).
    print(f"rock-envs image: {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    root = os.environ.get("ROCK_ENVS_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "rock-envs"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    # Two test sessions building at once would race on tags and wheel folders; one waits instead.
    with open(cache_dir() / f"{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc


def requirements_of(root: Path, extras: Iterable[str]) -> list[str]:
    """The project's dependencies plus those of `extras`, read from pyproject.toml now."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    optional = project.get("optional-dependencies", {})
    self_name = re.compile(r"^rock[-_.]envs\s*\[([^\]]*)\]\s*$", re.I)
    out: list[str] = list(project.get("dependencies", []))
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        if extra not in optional:
            raise ImageBuildError(f"pyproject.toml has no extra {extra!r}; known: {sorted(optional)}")
        seen.add(extra)
        for req in optional[extra]:
            m = self_name.match(req)  # "rock-envs[server]" inside an extra means that extra
            if m:
                todo += [e.strip() for e in m.group(1).split(",") if e.strip()]
            elif req not in out:
                out.append(req)
    return out


def installed_pins() -> list[str]:
    """``name==version`` of every distribution in this environment but rock-envs itself.

    The image gets the versions the caller runs (from the lock, with ``./run``), not whatever is
    newest on the day it is built: the two sides exchange pickles, and CI tested these versions."""
    pins = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and re.sub(r"[-_.]+", "-", name).lower() != "rock-envs":
            pins.add(f"{name}=={dist.version}")
    return sorted(pins, key=str.lower)


def wheelhouse(kind: str, requirements: list[str]) -> Path:
    """A cached folder of wheels for `requirements` (and their dependencies), built once."""
    pytag = f"cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}"
    pins = installed_pins()
    key = hashlib.sha256("\n".join([pytag, *requirements, "--", *pins]).encode()).hexdigest()[:16]
    house = cache_dir() / "wheelhouse" / f"{kind}-{pytag}-{key}"
    if not (house / ".complete").exists():
        say(f"collecting {kind} wheels into {house} (once per set of requirements)")
        house.mkdir(parents=True, exist_ok=True)
        (house / "requirements.txt").write_text("\n".join(requirements) + "\n")
        (house / "constraints.txt").write_text("\n".join(pins) + "\n")
        pip_wheel(
            ["-r", str(house / "requirements.txt"), "-c", str(house / "constraints.txt")], house, f"pip wheel ({kind})"
        )
        (house / ".complete").touch()  # only a finished wheelhouse counts as cached
    return house


def pip_wheel(args: list[str], dest: Path, what: str) -> None:
    """``pip wheel`` by this interpreter (its Python version is the image's) into `dest`."""
    run(
        [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "-q", "--wheel-dir", str(dest), *args],
        what,
    )


def link_wheels(requirements: list[str], dest: Path) -> None:
    """Fill `dest` with the cached wheels for `requirements`."""
    house = wheelhouse("deps", requirements)
    dest.mkdir(parents=True)
    for wheel in house.iterdir():
        if wheel.name != ".complete":
            # Hard links when the context is on the same filesystem: no 100 MB copy per build.
            try:
                os.link(wheel, dest / wheel.name)
            except OSError:
                shutil.copy2(wheel, dest / wheel.name)


__all__ = [
    "cache_dir",
    "installed_pins",
    "link_wheels",
    "locked",
    "pip_wheel",
    "requirements_of",
    "run",
    "say",
    "wheelhouse",
]
