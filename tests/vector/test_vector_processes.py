"""No zombie or orphan processes: after close(), after Ctrl-C of the caller, after the caller dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from tests.support.envs import CARTPOLE, SOKOBAN


def _gone(pids, within=5.0):
    """Wait (bounded) until none of `pids` exists any more, zombies included; return those left."""
    deadline = time.monotonic() + within
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [p for p in left if psutil.pid_exists(p)]
        time.sleep(0.05)
    return [(p, psutil.Process(p).status()) for p in left if psutil.pid_exists(p)]


@pytest.mark.parametrize("method", ["forkserver", "spawn", "fork"])
def test_close_leaves_no_worker_behind(make, process_backend, method):
    venv = make(SOKOBAN, 4, start_method=method)
    venv.reset(seed=0)
    pids = [venv.group.pid(w) for w in range(venv.group.num_workers)]
    assert all(psutil.pid_exists(p) for p in pids)
    venv.close()
    assert _gone(pids) == []
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(f"rock-envs-{os.getpid()}-")]


CHILD = textwrap.dedent("""
    import sys, rock_envs
    venv = rock_envs.make_vec({env_id!r}, 4, backend={backend!r}, num_workers=2, start_method={method!r})
    venv.reset(seed=0)
    print("ready", flush=True)
    while True:
        venv.step([0, 1, 0, 1])
""")


def _run_child(backend, method):
    code = CHILD.format(env_id=CARTPOLE, backend=backend, method=method)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    assert line.strip() == "ready", child.stderr.read()
    descendants = [p.pid for p in psutil.Process(child.pid).children(recursive=True)]
    assert len(descendants) >= 2  # the workers (and the fork server)
    return child, descendants


def test_ctrl_c_of_the_caller_leaves_no_worker_behind(process_backend):
    child, descendants = _run_child(process_backend.name, "forkserver")
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=20)
    assert "KeyboardInterrupt" in err
    assert _gone(descendants) == []


@pytest.mark.parametrize("method", ["forkserver", "spawn", "fork"])
def test_workers_exit_when_the_caller_is_killed(process_backend, method):
    child, descendants = _run_child(process_backend.name, method)
    child.kill()
    child.wait(timeout=10)
    child.stdout.close()
    child.stderr.close()
    assert _gone(descendants) == []
    # CartPole's observations went through shared memory: nothing of it may outlive the caller.
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(f"rock-envs-{child.pid}-")]


def test_workers_leave_their_imports_out_of_garbage_collection(make, backend):
    """A worker's full collections skip what it imported (a 50-100 ms pause each otherwise), and
    still free the garbage its envs make."""
    if backend.name == "local":
        pytest.skip("the local backend's envs live in the caller, whose heap is the user's")

    def frozen_and_collected(env):  # nested: pickled by value, for workers without this test module
        import gc

        class Cycle:
            pass

        garbage = Cycle()
        garbage.me = garbage  # only a collection frees it
        del garbage
        return gc.get_freeze_count(), gc.collect()

    venv = make(SOKOBAN, 4)
    in_caller = set(venv.blocks[0]) if backend.variant == "caller" else set()
    for i, (frozen, collected) in enumerate(venv.apply(frozen_and_collected)):
        if i not in in_caller:
            assert frozen > 10_000, f"env {i}: only {frozen} objects frozen in its worker"
            assert collected >= 1, f"env {i}: its worker's collection freed nothing"
