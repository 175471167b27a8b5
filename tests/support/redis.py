"""The cluster tests' redis-server (see :mod:`rock_envs.sandbox.cluster.local_redis`) and why they skipped."""

from __future__ import annotations

from rock_envs.sandbox.cluster.local_redis import LocalRedis as RedisProcess
from rock_envs.sandbox.cluster.local_redis import redis_problem

SKIPPED: set[str] = set()
"""Why the cluster tests skipped (one loud line at the end of the session)."""

__all__ = ["SKIPPED", "RedisProcess", "redis_problem"]
