"""Lock a sandbox down from the inside, as root in fresh namespaces (pid, mount, ipc, uts, maybe net).

Run by the agent's boot before it forks the service; each step is best effort and reported:

- with a root view (``writable_root``), the sandbox first moves into a private overlay of the host's
  ``/`` (its changes in the sandbox's own directory, gone with it), with the host's other mounts
  bound back at their places; so absolute paths such as ``/root`` or ``/etc/apt`` are writable
  inside while the host's own files never change; a sandbox made from a snapshot starts with the
  snapshot's overlay layer (``rootfs-seed`` in its directory);
- every mount the host had becomes read-only in this mount namespace (the overlay root excepted);
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
import subprocess
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
MNT_DETACH = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
HOST = "/.rock-envs-host"  # where the host's root sits for a moment while the overlay becomes /
SEED = "rootfs-seed"  # in the sandbox's directory: a snapshot's overlay layer, copied into the new one
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


def root_view(sandbox_dir: str) -> None:
    """Make a private overlay of the host's ``/`` this namespace's root; the host's other mounts are
    bound back at the same places (made read-only next, by :func:`readonly_host`)."""
    layer = os.path.join(sandbox_dir, "rootfs")
    points = sorted({point for point, _ in _mounts()} - {"/"}, key=len)
    os.makedirs(layer, exist_ok=True)
    # the overlay's own layers live on a tmpfs of this namespace (an upper dir on the host's root
    # filesystem would overlap the lower one): charged to the sandbox's memory, gone with it
    _mount("tmpfs", layer, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700")
    upper, work, merged = (os.path.join(layer, d) for d in ("upper", "work", "merged"))
    for path in (upper, work, merged):
        os.mkdir(path)
    seed = os.path.join(sandbox_dir, SEED)
    if os.path.isdir(seed):  # made from a snapshot: its changes to / (whiteouts and all) come back
        subprocess.run(["cp", "-a", "--", seed + "/.", upper], check=True, stdin=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", "--", seed], check=False, stdin=subprocess.DEVNULL)
    _mount("overlay", merged, "overlay", 0, f"lowerdir=/,upperdir={upper},workdir={work}")
    os.makedirs(merged + HOST, exist_ok=True)
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None or _libc.syscall(number, merged.encode(), (merged + HOST).encode()) != 0:
        err = ctypes.get_errno() if number is not None else 38
        raise OSError(err, f"pivot_root {merged}: {os.strerror(err)}")
    os.chdir("/")
    for point in points:
        if point == layer or point.startswith(layer + "/"):
            continue
        try:
            _mount(HOST + point, point, None, MS_BIND)
        except OSError:
            pass  # its mount point is gone from the view (a mount over a file that moved): leave it
    _mount(HOST + sandbox_dir, sandbox_dir, None, MS_BIND | MS_REC)  # the real one: its socket, its files
    if _libc.umount2((HOST).encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {HOST}: {os.strerror(err)}")
    os.rmdir(HOST)


def readonly_host(keep_root: bool = False) -> None:
    for point, flags in sorted(set(_mounts()), key=lambda p: len(p[0])):
        if point == "/proc" or point.startswith("/proc/") or keep_root and point == "/":
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


def private_dirs(sandbox_dir: str, fd: int) -> None:
    """Fresh /tmp and /dev/shm; hide sibling sandboxes; bind this sandbox's dir (``fd``) back, writable."""
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


def lock_down(sandbox_dir: str, own_net: bool, writable_root: bool = False) -> list[str]:
    """Every step of the module's docstring; the names of those that applied. With ``writable_root``
    the root view must apply (an ``OSError`` if it cannot): a sandbox promised one never runs without."""
    done: list[str] = []
    if writable_root:
        root_view(sandbox_dir)
        done.append("writable-root")
    fd = os.open(sandbox_dir, os.O_PATH)  # the real directory, whatever covers its parent later
    try:
        steps = [
            ("readonly-host", lambda: readonly_host(keep_root=writable_root)),
            ("private-dirs", lambda: private_dirs(sandbox_dir, fd)),
        ]
        if own_net:
            steps.append(("loopback", loopback_up))
        steps.append(("no-capabilities", drop_capabilities))
        for name, step in steps:
            try:
                step()
                done.append(name)
            except OSError:
                pass
    finally:
        os.close(fd)
    return done
