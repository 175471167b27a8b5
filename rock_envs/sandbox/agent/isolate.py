"""Lock a sandbox down from the inside, as root in fresh namespaces (pid, mount, ipc, uts, maybe net).

Run by the agent's boot before it forks the service; each step is best effort and reported:

- every mount the host had becomes read-only in this mount namespace;
- ``/tmp`` and ``/dev/shm`` are fresh tmpfs, private to the sandbox (a Python installed under /tmp,
  such as a venv in a checkout there, is bound back read-only so the sandbox can run it);
- the directory holding all sandboxes is covered by an empty tmpfs, and only this sandbox's own
  directory is bound back, read-write, at the same path;
- ``lo`` is brought up when the sandbox has its own network namespace;
- the capability bounding set is emptied and ``no_new_privs`` set, so every program the sandbox
  runs is root without capabilities: it cannot remount, leave its cgroup, ptrace outside, load
  modules or reach the host's processes (its pid namespace hides them anyway).

Standard library only.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
    if _libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _mounts() -> list[tuple[str, int]]:
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            parts = line.split()
            point = parts[4].replace("\\040", " ")
            flags = sum(_FLAGS.get(opt, 0) for opt in parts[5].split(","))
            out.append((point, flags))
    return out


def readonly_host() -> None:
    for point, flags in sorted(set(_mounts()), key=lambda p: len(p[0])):
        if point == "/proc" or point.startswith("/proc/"):
            continue
        try:
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
        except OSError:
            pass  # a mount we may not touch (already gone, or locked): leave it


def _python_under_tmp() -> list[str]:
    """Where this Python and its packages live, if under /tmp (a checkout or venv there): the fresh
    /tmp would hide them from the sandbox's own `python`, so they are bound back, read-only."""
    venv = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))  # the agent runs with -I -S
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    paths = {os.path.realpath(p) for p in [venv, checkout, sys.prefix, sys.exec_prefix, *sys.path] if p}
    under = sorted(p for p in paths if p.startswith("/tmp/") and os.path.isdir(p))
    return [p for i, p in enumerate(under) if not any(p.startswith(q.rstrip("/") + "/") for q in under[:i])]


def private_dirs(sandbox_dir: str) -> None:
    """Fresh /tmp and /dev/shm; hide sibling sandboxes; bind this sandbox's dir back, writable."""
    fd = os.open(sandbox_dir, os.O_PATH)
    keep = {path: os.open(path, os.O_PATH) for path in _python_under_tmp()}
    try:
        _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
        for path, kept in keep.items():
            os.makedirs(path, exist_ok=True)
            _mount(f"/proc/self/fd/{kept}", path, None, MS_BIND | MS_REC)
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        if os.path.isdir("/dev/shm"):
            _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
        parent = os.path.dirname(sandbox_dir.rstrip("/"))
        if os.path.isdir(parent):  # not under /tmp, so still visible: cover it
            _mount("tmpfs", parent, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        os.makedirs(sandbox_dir, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", sandbox_dir, None, MS_BIND | MS_REC)
        _mount(None, sandbox_dir, None, MS_REMOUNT | MS_BIND)
    finally:
        os.close(fd)
        for kept in keep.values():
            os.close(kept)


def loopback_up() -> None:
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def drop_capabilities() -> None:
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def lock_down(sandbox_dir: str, own_net: bool) -> list[str]:
    done: list[str] = []
    steps = [("readonly-host", readonly_host), ("private-dirs", lambda: private_dirs(sandbox_dir))]
    if own_net:
        steps.append(("loopback", loopback_up))
    steps.append(("no-capabilities", drop_capabilities))
    for name, step in steps:
        try:
            step()
            done.append(name)
        except OSError:
            pass
    return done
