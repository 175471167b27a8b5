"""The ModelService: an OpenAI-compatible endpoint inside each sandbox, answered by the trainer or an upstream.

    agent in sandbox ──HTTP──► 127.0.0.1:PORT (the sandbox's own loopback, agent/tunnel.py)
        ──agent channel──► ModelHub (hub.py, in the manager: embedded or in the server)
            ├─ trainer mode: queued until ``ModelService.calls()`` hands it out and ``call.respond(...)``
            └─ proxy mode:   forwarded to ``upstream_url`` (proxy.py)
        every call and answer is appended to the sandbox's trajectory (``CallRecord``)

Enable it per sandbox with ``SandboxConfig(model_service="trainer")`` (or a :class:`ModelServiceSpec`);
the sandbox then has ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` (its own key) in its environment.
"""

from .client import ModelCall, ModelService
from .infra import INFRA_STATUSES, call_infra_error, trajectory_infra_error
from .models import CallRecord, ModelServiceSpec, TokenTrajectory

__all__ = [
    "INFRA_STATUSES",
    "CallRecord",
    "ModelCall",
    "ModelService",
    "ModelServiceSpec",
    "TokenTrajectory",
    "call_infra_error",
    "trajectory_infra_error",
]
