"""Start a sandbox's agent: join cgroups, enter fresh namespaces, lock down, reap as pid 1, serve.

    python -m rock_envs.sandbox.agent --socket DIR/agent.sock --root DIR/root --state DIR
        [--ready-fd N] [--namespaces] [--own-net] [--cgroup PROCS_FILE ...] [--rlimit NAME=VALUE ...]

The process tree of one sandbox with namespaces (all of it inside the sandbox's cgroups)::

    init  (pid 1 of a new pid namespace, forked by the zygote straight into it; reaps orphans;
      │    killing it from the host kills everything)
      └─ agent  (the asyncio service on the unix socket; every command is its child)

When init exits the kernel kills every process left in the namespace. Started from the command
line (not forked by the zygote into a pid namespace), a *launcher* in the host's pid namespace makes
the namespace, waits for init and exits with it. Without namespaces (not root, or
``isolation="none"``) the launcher is the agent, in its own session and process group. Standard
library only. :mod:`.zygote` runs the same :func:`launch` in a forked child, so a new sandbox costs a
fork instead of a Python start.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import signal
import sys
from typing import Any

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = (
    0x00020000,
    0x04000000,
    0x08000000,
    0x20000000,
    0x40000000,
)
MS_REC, MS_PRIVATE, MS_NOSUID, MS_NODEV, MS_NOEXEC = 16384, 1 << 18, 2, 4, 8
PR_SET_PDEATHSIG = 1

# Imports ``rock_envs.sandbox.agent`` from the directory given as argv[1] without running the
# ``__init__`` of ``rock_envs`` or ``rock_envs.sandbox`` (which pull in numpy, pydantic, ...).
BOOTSTRAP = (
    "import sys,types\n"
    "r=sys.argv.pop(1)\n"
    "for n,p in (('rock_envs',r+'/rock_envs'),('rock_envs.sandbox',r+'/rock_envs/sandbox')):\n"
    "    m=types.ModuleType(n);m.__path__=[p];sys.modules[n]=m\n"
    "m=sys.argv.pop(1)\n"
    "__import__('rock_envs.sandbox.agent.'+m,fromlist=['main']).main(sys.argv[1:])\n"
)


def parse(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m rock_envs.sandbox.agent")
    p.add_argument("--socket", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--ready-fd", type=int, default=None)
    p.add_argument("--namespaces", action="store_true", help="new pid/mount/ipc/uts namespaces (root only)")
    p.add_argument("--own-net", action="store_true", help="also a new network namespace (no network)")
    p.add_argument("--own-pids", action="store_true", help="already alone in a pid namespace (a container)")
    p.add_argument("--writable-root", action="store_true", help="absolute paths writable (a private root view)")
    p.add_argument("--cgroup", action="append", default=[], metavar="PROCS_FILE")
    p.add_argument("--rlimit", action="append", default=[], metavar="NAME=VALUE")
    return vars(p.parse_args(argv))


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def launch(spec: dict[str, Any]) -> None:
    """Become the sandbox described by ``spec`` (the keys of :func:`parse`, plus optional ``env``). Never returns."""
    ready = spec.get("ready_fd")
    try:
        if os.getsid(0) != os.getpid():
            os.setsid()
        for procs in spec.get("cgroup") or []:
            with open(procs, "w") as fh:
                fh.write(str(os.getpid()))
        if spec.get("env") is not None:
            os.environ.clear()
            os.environ.update(spec["env"])
        info: dict[str, Any] = {"isolation": [], "pid_namespace": bool(spec.get("own_pids"))}
        if spec.get("namespaces"):
            libc = ctypes.CDLL(None, use_errno=True)
            flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (CLONE_NEWNET if spec.get("own_net") else 0)
            if os.getpid() == 1:  # the zygote forked us into a fresh pid namespace: no launcher needed
                _check(libc.unshare(flags), "unshare")
            else:
                _check(libc.unshare(flags | CLONE_NEWPID), "unshare")
                init = os.fork()
                if init:
                    if ready is not None:
                        os.close(ready)
                    _launcher(init)
                libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with the launcher
            _check(libc.mount(None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None), "mount --make-rprivate /")
            _check(
                libc.mount(b"proc", b"/proc", b"proc", ctypes.c_ulong(MS_NOSUID | MS_NODEV | MS_NOEXEC), None),
                "mount /proc",
            )
            from .isolate import lock_down

            info = {
                "pid_namespace": True,
                "isolation": ["namespaces"]
                + lock_down(
                    os.path.dirname(spec["socket"]), bool(spec.get("own_net")), bool(spec.get("writable_root"))
                ),
            }
        for item in spec.get("rlimit") or []:
            name, _, value = item.partition("=")
            resource.setrlimit(getattr(resource, "RLIMIT_" + name.upper()), (int(value), int(value)))
        if os.getpid() == 1:
            agent = os.fork()
            if agent:
                if ready is not None:
                    os.close(ready)
                _reap_forever(agent)
        if spec.get("writable_root"):  # what ROCK's clients expect to find writable in a sandbox
            for path in ("/root", "/tmp", "/data/logs", "/app", "/etc/apt"):
                os.makedirs(path, exist_ok=True)
        os.chdir(spec["root"])
        os.environ.setdefault("HOME", spec["root"])
    except BaseException as exc:  # tell whoever waits why, then go
        if ready is not None:
            try:
                os.write(ready, b"error " + json.dumps(f"{type(exc).__name__}: {exc}").encode() + b"\n")
            except OSError:
                pass  # nobody waits any more (the start was given up)
        os._exit(70)
    _serve(spec["socket"], spec["root"], spec["state"], info, ready)


def _serve(sock: str, root: str, state: str, info: dict[str, Any], ready: int | None) -> None:
    import asyncio

    from .service import Agent

    def on_ready() -> None:
        if ready is not None:
            os.write(ready, b"ready\n")
            os.close(ready)

    if hasattr(os, "pidfd_open") and hasattr(asyncio, "PidfdChildWatcher") and sys.version_info < (3, 12):
        # no thread per child: under a full pids limit (a fork bomb) a thread may not start,
        # and a child nobody waits for would hang its request forever
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
    try:
        asyncio.run(Agent(sock, root, state, info).serve(on_ready))
    finally:
        os._exit(0)


def _launcher(init: int) -> None:
    """The host-side parent: pass SIGTERM on, exit with init's status."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: os.kill(init, signal.SIGKILL))
    while True:
        try:
            _, status = os.waitpid(init, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(0)


def _reap_forever(child: int) -> None:
    """pid 1's only job: reap every orphan, and leave (killing the namespace) when ``child`` ends."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: os.kill(child, signal.SIGKILL))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue
        if pid == child:
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def main(argv: list[str] | None = None) -> None:
    launch(parse(sys.argv[1:] if argv is None else argv))
