"""The server split in two (ROCK's write and read clusters): one control plane, many data replicas.

``rock-envs serve --role control --redis URL`` owns what changes the set of sandboxes (create,
delete, pools, leases, TTL reaping) and writes where each sandbox is to a :class:`SandboxStore`
kept in Redis. Any number of ``rock-envs serve --role data --control URL`` replicas read that store
and serve exec, sessions, files, status, jobs and env frames by talking to the sandboxes' agents
themselves: no call of theirs goes through the control plane, but ModelService calls, whose queue is
the control plane's (see :mod:`..server.model_forward`). One server alone (``--role single``, the default) keeps
its store in memory and needs nothing else.
"""

from .store import MemoryStore, SandboxRecord, SandboxStore, StoreUnreachableError

__all__ = ["MemoryStore", "SandboxRecord", "SandboxStore", "StoreUnreachableError"]
