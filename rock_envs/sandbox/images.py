"""Build the rock-envs container image without any image registry.

Nothing is ever pulled. With ``base=None`` the base is a Debian bookworm root filesystem made by
``debootstrap`` from Debian's package mirror and ``docker import``-ed as
``rock-envs-base:bookworm-<hash>``. Any other base (say ``python:3.11-slim``) must already be in the
local engine. On top goes a venv at /opt/rock-envs, installed with ``pip --no-index`` from wheels
built on this machine; this works because the wheels are built by an interpreter of the same
Python version as the image's ``python3`` (bookworm's python3 is 3.11).

Both images are cached by content hash: a second call with nothing changed only looks up a tag.
Dependency wheels are cached in ``~/.cache/rock-envs/wheelhouse`` (``ROCK_ENVS_CACHE`` moves it), so
after a source edit only the small rock-envs wheel and the last image layers are rebuilt.

    python -m rock_envs.sandbox.images --print-tag    # build if needed; only the tag on stdout
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from rock_envs.core.errors import ImageBuildError
from rock_envs.sandbox import wheels

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

__all__ = ["ImageBuildError", "build_image", "ensure_debian_base", "find_project_root", "main"]

IMAGE_REPO = "rock-envs"
DEFAULT_ALIAS = "rock-envs:latest"
PHASES = ("base image", "hashing the sources", "dependency wheels", "the rock-envs wheel", "docker build")
"""What `build_image` tells `on_phase`, in order (a cached image stops after the second)."""
BASE_REPO = "rock-envs-base"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("ROCK_ENVS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# python3-venv brings ensurepip, so `python3 -m venv` gives a venv with pip; tini for users who run
# the image without docker's --init; procps (ps, kill) because agents and tests look at processes;
# curl because ROCK's and ROLL's clients probe servers inside their sandboxes with it.
DEBIAN_PACKAGES = ("python3", "python3-venv", "bash", "procps", "ca-certificates", "tini", "curl")
VENV = "/opt/rock-envs"
# Bump to force new images when the recipe below changes in a way the hashes cannot see.
RECIPE_VERSION = "2"


def _client(timeout: int = 600):
    try:
        import docker
    except ImportError as e:
        raise ImageBuildError("the Docker SDK is missing: pip install 'rock-envs[docker]'") from e
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as e:
        raise ImageBuildError(
            f"no Docker engine answers ({e}); start one (as root: scripts/docker-engine.sh) "
            "or point DOCKER_HOST at yours"
        ) from e
    return client


def _image_or_none(client, ref: str):
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def _split_tag(ref: str) -> tuple[str, str]:
    # "host:5000/a/b:dev" -> ("host:5000/a/b", "dev"); a colon before the last slash is a port.
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        return ref, "latest"
    return name, tag


# --------------------------------------------------------------------------- the Debian base


def ensure_debian_base(client=None) -> str:
    """Return the tag of the debootstrapped bookworm base, building and importing it once."""
    client = client or _client()
    recipe = f"{RECIPE_VERSION} minbase {DEBIAN_SUITE} {','.join(DEBIAN_PACKAGES)}"
    tag = f"{BASE_REPO}:{DEBIAN_SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    if _image_or_none(client, tag):
        return tag
    with wheels.locked("base"):
        if _image_or_none(client, tag):  # someone built it while we waited
            return tag
        if os.geteuid() != 0:
            raise ImageBuildError(
                "building the Debian base needs root (debootstrap); run as root once, "
                "or pass a local base image, e.g. --base python:3.11-slim"
            )
        if not shutil.which("debootstrap"):
            if not shutil.which("apt-get"):
                raise ImageBuildError("debootstrap is missing and apt-get is not available to install it")
            wheels.say("installing debootstrap with apt-get")
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            wheels.run(["apt-get", "update", "-qq"], "apt-get update", env=env)
            wheels.run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"],
                "apt-get install debootstrap",
                env=env,
            )
        wheels.say(f"debootstrap {DEBIAN_SUITE} from {DEBIAN_MIRROR} (once; takes a minute or two)")
        # Under the cache dir, not /tmp: /tmp may be a small tmpfs, the rootfs is ~200 MB.
        with tempfile.TemporaryDirectory(prefix="rootfs-", dir=wheels.cache_dir()) as tmp:
            rootfs = Path(tmp, "rootfs")
            wheels.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(DEBIAN_PACKAGES)}",
                    DEBIAN_SUITE,
                    str(rootfs),
                    DEBIAN_MIRROR,
                ],
                "debootstrap",
            )
            # Package lists and downloaded .debs are dead weight (`apt-get update` brings lists back).
            for pattern in ("var/lib/apt/lists/*_*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb"):
                for junk in rootfs.glob(pattern):
                    junk.unlink()
            wheels.say(f"importing the root filesystem as {tag}")
            # --numeric-owner: file owners are the rootfs' uids, not names looked up on this host.
            tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            try:
                repo, tag_part = _split_tag(tag)
                client.api.import_image(
                    src=tar.stdout,
                    repository=repo,
                    tag=tag_part,
                    stream_src=True,
                    # An imported image has no config: give it the PATH and locale images expect.
                    changes=[
                        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "ENV LANG=C.UTF-8",
                        'CMD ["bash"]',
                    ],
                )
            finally:
                assert tar.stdout is not None  # Popen(stdout=PIPE)
                tar.stdout.close()
                tar.wait()
            if tar.returncode != 0:
                raise ImageBuildError(f"tar of {rootfs} failed (exit {tar.returncode})")
        if not _image_or_none(client, tag):
            raise ImageBuildError(f"docker import did not produce {tag}")
        return tag


# --------------------------------------------------------------------------- the rock-envs image


def find_project_root(start: Path | None = None) -> Path:
    """The source checkout this package lives in (the folder with rock-envs' pyproject.toml)."""
    here = (start or Path(__file__)).resolve()
    for folder in (here, *here.parents):
        toml = folder / "pyproject.toml"
        if toml.is_file() and re.search(r'(?m)^name\s*=\s*"rock-envs"', toml.read_text()):
            return folder
    raise ImageBuildError(
        f"no rock-envs source checkout found above {here}; the image is built from sources: "
        "pass project_root=/path/to/rock-envs"
    )


def _source_files(root: Path) -> list[Path]:
    files = [root / "pyproject.toml"]
    for sub in ("rock_envs", "registry"):
        files += sorted(
            p for p in (root / sub).rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        )
    return files


def _dockerfile(base: str, extras: tuple[str, ...]) -> str:
    spec = f"rock-envs[{','.join(extras)}]" if extras else "rock-envs"
    # Two stages: the dependency venv is built in `deps` and copied over, so the wheels never end up
    # in a layer of the final image, and a source edit reuses the cached dependency layers.
    # `python3 -m venv` is the base's own python: /usr/bin/python3 on Debian, /usr/local on python:*.
    return f"""\
# generated by rock_envs.sandbox.images (recipe {RECIPE_VERSION})
FROM {base} AS deps
RUN python3 -m venv {VENV}
COPY deps/ /wheels/
RUN {VENV}/bin/pip install --disable-pip-version-check --no-cache-dir --no-index \\
        --find-links /wheels -r /wheels/requirements.txt

FROM {base}
COPY --from=deps {VENV} {VENV}
COPY project/ /tmp/rock-envs-wheel/
RUN {VENV}/bin/pip install --disable-pip-version-check --no-cache-dir --no-index \\
        --find-links /tmp/rock-envs-wheel "{spec}" && rm -rf /tmp/rock-envs-wheel
ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    VIRTUAL_ENV={VENV} PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 LANG=C.UTF-8
CMD ["bash"]
"""


def _probe_python(client, image: str) -> tuple[str, str]:
    """(major.minor, machine) of the image's python3."""
    code = "import sys, platform; print('%d.%d' % sys.version_info[:2], platform.machine())"
    try:
        out = client.containers.run(image, ["python3", "-c", code], remove=True, network_disabled=True, entrypoint=[])
    except Exception as e:
        raise ImageBuildError(f"base image {image} has no working python3 ({e})") from e
    version, machine = out.decode().split()
    return version, machine


def build_image(
    base: str | None = None,
    tag: str | None = None,
    *,
    extras: Iterable[str] = ("server", "agentic"),
    project_root: str | os.PathLike | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> str:
    """Build (or find cached) the rock-envs image and return its tag.

    `base`: a local image with Python of this interpreter's version, e.g. ``python:3.11-slim``;
    None builds a Debian bookworm base with debootstrap. It is never pulled.
    `tag`: an extra name for the result (default ``rock-envs:latest``); when given it is returned,
    otherwise the content-addressed ``rock-envs:<hash12>``. `on_phase` is told each phase as it
    begins (of :data:`PHASES`; `rock-envs image build` shows them as a progress bar).
    """
    phase = on_phase or (lambda name: None)
    phase(PHASES[0])
    client = _client()
    extras = tuple(sorted(set(extras)))
    root = Path(project_root).resolve() if project_root else find_project_root()
    if base is None:
        base = ensure_debian_base(client)
    base_image = _image_or_none(client, base)
    if base_image is None:
        raise ImageBuildError(
            f"base image {base!r} is not in the local Docker engine and rock-envs never pulls images; "
            f"get it first (`docker pull {base}` where a registry is reachable, or "
            f"`docker load -i image.tar`), or omit the base to build a Debian one offline"
        )

    phase(PHASES[1])
    dockerfile = _dockerfile(base, extras)
    digest = hashlib.sha256()
    for part in (dockerfile.encode(), base_image.id.encode()):
        digest.update(part + b"\0")
    for path in _source_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    hashed = f"{IMAGE_REPO}:{digest.hexdigest()[:12]}"
    alias = tag or DEFAULT_ALIAS

    with wheels.locked("image"):
        image = _image_or_none(client, hashed)
        if image is None:
            image = _build(client, root, base, extras, dockerfile, hashed, phase)
        image.tag(*_split_tag(alias))
    return tag or hashed


def _build(
    client, root: Path, base: str, extras: tuple[str, ...], dockerfile: str, hashed: str, phase: Callable[[str], None]
):
    import docker.errors

    version, machine = _probe_python(client, base)
    host = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if (version, machine) != (host, platform.machine()):
        raise ImageBuildError(
            f"base {base} has Python {version} on {machine}, but wheels are built here by Python "
            f"{host} on {platform.machine()}; use a base with Python {host} (e.g. python:{host}-slim) "
            f"or run the build from a Python {version} environment"
        )
    with tempfile.TemporaryDirectory(prefix="context-", dir=wheels.cache_dir()) as tmp:
        ctx = Path(tmp)
        phase(PHASES[2])
        requirements = wheels.requirements_of(root, extras)
        wheels.link_wheels(requirements, ctx / "deps")
        (ctx / "deps" / "requirements.txt").write_text("\n".join(requirements) + "\n")
        # The build backend (hatchling) comes from a cached wheelhouse too, so that rebuilding after
        # a source edit needs no index at all (pip would otherwise retry PyPI for a minute offline).
        build_requires = tomllib.loads((root / "pyproject.toml").read_text())["build-system"]["requires"]
        tools = wheels.wheelhouse("build", build_requires)
        phase(PHASES[3])
        wheels.say(f"building the rock-envs wheel from {root}")
        wheels.pip_wheel(
            ["--no-deps", "--no-index", "--find-links", str(tools), str(root)], ctx / "project", "pip wheel (rock-envs)"
        )
        (ctx / "Dockerfile").write_text(dockerfile)
        phase(PHASES[4])
        wheels.say(f"docker build {hashed} on {base}")
        try:
            # pull=False and no network inside: everything comes from the context.
            image, _ = client.images.build(
                path=str(ctx),
                tag=hashed,
                pull=False,
                network_mode="none",
                rm=True,
                forcerm=True,
                labels={"org.rock-envs.base": base, "org.rock-envs.extras": ",".join(extras)},
            )
        except docker.errors.BuildError as e:
            log = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in e.build_log)
            raise ImageBuildError(f"docker build failed: {e}\n{log[-3000:]}") from e
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rock_envs.sandbox.images",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--base", help="a local base image with Python 3.11, e.g. python:3.11-slim")
    parser.add_argument("--tag", help="an extra tag for the image (default rock-envs:latest)")
    parser.add_argument(
        "--print-tag", action="store_true", help="print only the tag on stdout (progress always goes to stderr)"
    )
    parser.add_argument("--extra", action="append", default=None, help="rock-envs extras to install (repeatable)")
    args = parser.parse_args(argv)
    try:
        print(build_image(args.base, args.tag, extras=args.extra or ("server", "agentic")))
    except ImageBuildError as e:
        print(f"rock-envs image: ERROR: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
