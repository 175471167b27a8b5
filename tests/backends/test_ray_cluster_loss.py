"""The ray backend when the whole cluster is gone (its GCS and every raylet SIGKILLed): every call
raises a clear error within its timeout, and `close()` returns.

Ray ends a driver whose GCS stays unreachable for a minute, so the driver here is a child process
with a cluster of its own (its own `RayNodes`); the session's cluster is never touched.
"""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from tests.support.paths import PYTHON, ROOT

pytestmark = pytest.mark.ray

TIMEOUT = 30.0  # the vector env's timeout in the child

SCRIPT = textwrap.dedent(f"""
    import json, os, sys, time
    import numpy as np, ray
    import rock_envs
    from tests.support.ray_nodes import RayNodes

    nodes = RayNodes()
    results = {{}}
    try:
        nodes.start_head(num_cpus=1)
        nodes.add_node("worker", num_cpus=2)
        ray.init(address=nodes.address, log_to_driver=False, configure_logging=False)
        venv = rock_envs.make_vec("CartPole-v1", 4, backend="ray", num_workers=2, timeout={TIMEOUT},
                                  worker_resources={{"num_cpus": 0.5}})
        venv.reset(seed=0)
        venv.step(np.zeros(4, dtype=np.int64))
        for node in reversed(nodes.nodes):  # the worker node, then the head with its GCS
            nodes.kill(node)
        calls = {{
            "step": lambda: venv.step(np.zeros(4, dtype=np.int64)),
            "step again": lambda: venv.step(np.zeros(4, dtype=np.int64)),
            "reset": lambda: venv.reset(seed=1),
            "close": venv.close,
        }}
        for name, call in calls.items():
            started = time.monotonic()
            try:
                call()
                results[name] = {{"raised": None}}
            except Exception as e:
                results[name] = {{"raised": type(e).__name__, "message": str(e)}}
            results[name]["seconds"] = time.monotonic() - started
    finally:
        print(json.dumps(results), flush=True)
        nodes.stop()
        os._exit(0)  # not ray.shutdown(): it would wait on the GCS that is gone
""")


@pytest.mark.slow
def test_every_call_raises_a_clear_error_once_the_cluster_is_gone():
    out = subprocess.run([PYTHON, "-c", SCRIPT], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    for name in ("step", "step again", "reset"):
        assert results[name]["raised"] == "BackendUnavailableError", results
        assert "the Ray cluster is gone" in results[name]["message"]
        assert "start the cluster again and make a new vector env" in results[name]["message"]
        assert results[name]["seconds"] < TIMEOUT, results  # the call's own timeout bounds it
    assert results["close"]["raised"] is None, results
    assert results["close"]["seconds"] < TIMEOUT, results
