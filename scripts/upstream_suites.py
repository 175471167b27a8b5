"""Run Gymnasium's, Stable-Baselines3's and GEM's own test suites against rock-envs.

    python scripts/upstream_suites.py gymnasium --src /path/to/Gymnasium[.git] [--backend subprocess|local|none] [-- pytest args]
    python scripts/upstream_suites.py sb3 [--backend ...]              # SB3's sdist (pip download), its VecEnv tests
    python scripts/upstream_suites.py gem --src /path/to/gem[.git]     # GEM's offline env scripts

The suite's files are extracted into a temporary folder (never into this project) at the version
installed here (Gymnasium: the tag of the installed version, read from a git repository or mirror;
SB3: the sdist of the installed version), and pytest runs them with `scripts/upstream_adapter.py`,
which puts rock-envs where the suite builds its vector envs. `--backend none` runs the same files
against the real classes: failures there are the suite's own (missing extras such as Box2D).
Prints pytest's summary line and, with `--failures`, every failing test id.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITES = {
    # suite: (distribution, the files to run)
    "gymnasium": ("gymnasium", ["tests/vector", "tests/wrappers/vector"]),
    "sb3": (
        "stable-baselines3",
        [
            "tests/test_vec_envs.py",
            "tests/test_vec_normalize.py",
            "tests/test_vec_monitor.py",
            "tests/test_vec_check_nan.py",
        ],
    ),
    # GEM's other env scripts need a network (datasets, search) or Python 3.12 syntax (test_fifteen)
    "gem": ("gem-llm", ["tests/test_env/test_game.py"]),
}


def _git(src: Path) -> list[str]:
    """git on `src`: a bare repository or mirror, or a checkout."""
    return ["git", "--git-dir", str(src)] if (src / "HEAD").is_file() else ["git", "-C", str(src)]


def _from_git(src: Path, ref: str, dest: Path, paths: list[str]) -> None:
    archive = subprocess.run([*_git(src), "archive", ref, *paths], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def _release_ref(src: Path, version: str) -> str:
    """The commit of the installed version: its tag, else the commit titled "Update to v<version>"."""
    git = _git(src)
    tags = subprocess.run([*git, "tag", "-l", f"v{version}"], capture_output=True, text=True).stdout.split()
    if tags:
        return tags[0]
    log = subprocess.run([*git, "log", "--format=%H %s"], capture_output=True, text=True, check=True).stdout
    for line in log.splitlines():
        commit, _, subject = line.partition(" ")
        if subject.strip() == f"Update to v{version}":
            return commit
    raise SystemExit(f"no tag or release commit of gymnasium {version} in {src}")


def extract(suite: str, src: Path | None, dest: Path) -> list[str]:
    dist, paths = SUITES[suite]
    version = metadata.version(dist)
    if suite == "sb3":
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"{dist}=={version}",
                "-d",
                str(dest),
            ],
            check=True,
        )
        (sdist,) = dest.glob("*.tar.gz")
        with tarfile.open(sdist) as tar:
            tar.extractall(dest, filter="data")
        root = next(p for p in dest.iterdir() if p.is_dir())
        (root / "setup.cfg").unlink(missing_ok=True)  # its pytest options (coverage) are not ours to run
        os.chdir(root)
        return paths
    if src is None:
        raise SystemExit(f"{suite}: pass --src, a git repository or mirror of {dist}")
    ref = _release_ref(src, version)
    _from_git(src, ref, dest, ["tests"])
    os.chdir(dest)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--src", type=Path, help="a git repository or mirror of the suite's project")
    parser.add_argument("--backend", default="subprocess", help="subprocess, local, or none (the real classes)")
    parser.add_argument("--failures", action="store_true", help="list every failing test id")
    args, pytest_args = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix=f"upstream-{args.suite}-") as tmp:
        paths = extract(args.suite, args.src.resolve() if args.src else None, Path(tmp))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.getcwd(), os.environ.get("PYTHONPATH", "")]),
            "ROCK_ENVS_UPSTREAM_SUITE": args.suite,
            "ROCK_ENVS_UPSTREAM_BACKEND": args.backend,
        }
        command = [sys.executable, "-m", "pytest", "-q", "-p", "upstream_adapter", "-p", "no:cacheprovider"]
        command += ["-o", "addopts=", "-W", "ignore::DeprecationWarning", "-rf" if args.failures else "-q"]
        if args.suite == "gem":
            command += ["-o", "python_functions=test*"]
        proc = subprocess.run([*command, *paths, *[a for a in pytest_args if a != "--"]], env=env)
        return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
