"""Process checkpoints (``snapshot(memory=True)``): why they cannot be taken here, said exactly.

A memory snapshot needs CRIU on the host, a kernel it understands, and a way to bring the dumped
processes back inside a *new* sandbox. What was found on the machines rock-envs is built on
(Debian bookworm, kernel 6.18, root, cgroup v1):

- Debian's ``criu`` (3.17.1) fails ``criu check`` before any dump: ``vdso: Unexpected rt vDSO area
  bounds`` (kernels since 6.x map the vDSO data as ``[vvar]`` plus ``[vvar_vclock]``, which CRIU
  learnt in 4.0), so no process can be checkpointed with it;
- CRIU 4.2 built from source passes ``criu check``, but dumping a sandbox's program fails on the
  sandbox's own mount namespace (``mnt: ... doesn't have a proper root mount``: the read-only view
  of the host is made of bind mounts CRIU cannot name), and restoring into another sandbox would
  also need its pid namespace, its paths and its agent's lifeline socket remapped, which rock-envs
  does not do.

So ``memory=True`` raises :class:`CheckpointUnavailableError` with the first of these reasons that
applies on the machine at hand (``problem()``); filesystem snapshots work everywhere.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from ..errors import CheckpointUnavailableError

NOT_BUILT = (
    "CRIU itself works here, but rock-envs cannot restore a checkpoint into a new sandbox: the "
    "sandbox's mount namespace (bind mounts of the host) does not dump, and its pid namespace, paths and "
    "agent socket would need remapping"
)


def criu_binary() -> str | None:
    return (
        os.environ.get("ROCK_ENVS_CRIU")
        or shutil.which("criu")
        or next((p for p in ("/usr/sbin/criu", "/sbin/criu") if os.path.exists(p)), None)
    )


@functools.lru_cache(maxsize=4)
def _check(binary: str) -> str | None:
    """What `criu check` says is wrong, or None when it says "Looks good"."""
    try:
        done = subprocess.run([binary, "check"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`{binary} check` could not run: {exc}"
    if done.returncode == 0:
        return None
    errors = [line.strip() for line in (done.stderr + done.stdout).splitlines() if "Error" in line]
    return f"`{binary} check` fails: " + ("; ".join(errors[:3]) or f"exit code {done.returncode}")


def problem(runtime: str) -> str:
    """Why the ``runtime`` runtime cannot checkpoint a sandbox's processes on this machine."""
    binary = criu_binary()
    if binary is None:
        return "CRIU is not installed on this host (Debian: `apt-get install criu`)"
    found = _check(binary)
    if found is not None:
        return found
    if runtime == "docker":
        return "CRIU works here, but docker checkpoints need an engine with experimental features and rock-envs does not drive them"
    return NOT_BUILT


def unavailable(runtime: str) -> CheckpointUnavailableError:
    return CheckpointUnavailableError(
        f"`snapshot(memory=True)`: the {runtime} runtime cannot checkpoint processes here: "
        f"{problem(runtime).rstrip('.')}. "
        "Take a filesystem snapshot (memory=False): files are kept, running programs are not."
    )
