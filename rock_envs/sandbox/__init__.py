"""Sandboxes: isolated places to run shells, commands, jobs, files and env workers.

    from rock_envs.sandbox import Sandbox, SandboxConfig, SyncSandbox

    async with Sandbox(SandboxConfig(ttl=600)) as sb:     # base_url=None: embedded, no server
        await sb.create_session("bash-1")
        result = await sb.arun("echo Hello", session="bash-1", timeout=30)

See ``runtime/process.py`` for what the process runtime isolates, ``errors.py`` for the error tree.
"""

from .config import SandboxConfig
from .errors import (
    AuthenticationError,
    CheckpointUnavailableError,
    CommandTimeoutError,
    InvalidRequestError,
    JobNotFoundError,
    PathOutsideSandboxError,
    PayloadTooLargeError,
    SandboxClosedError,
    SandboxDiedError,
    SandboxError,
    SandboxFileNotFoundError,
    SandboxLimitError,
    SandboxNotFoundError,
    SandboxStartError,
    SessionExistsError,
    SessionNotFoundError,
    SnapshotNotFoundError,
)
from .models import CommandResult, FileEntry, JobInfo, JobLogs, SandboxInfo, SandboxSnapshot, SandboxSpec
from .sdk.pool import SandboxPool
from .sdk.sandbox import OutputChunk, Sandbox
from .sdk.sync import SyncSandbox
from .sdk.worker import WorkerChannel

__all__ = [
    "AuthenticationError",
    "CheckpointUnavailableError",
    "CommandResult",
    "CommandTimeoutError",
    "FileEntry",
    "InvalidRequestError",
    "JobInfo",
    "JobLogs",
    "JobNotFoundError",
    "OutputChunk",
    "PathOutsideSandboxError",
    "PayloadTooLargeError",
    "Sandbox",
    "SandboxPool",
    "SandboxClosedError",
    "SandboxConfig",
    "SandboxDiedError",
    "SandboxError",
    "SandboxFileNotFoundError",
    "SandboxInfo",
    "SandboxLimitError",
    "SandboxNotFoundError",
    "SandboxSnapshot",
    "SandboxSpec",
    "SandboxStartError",
    "SessionExistsError",
    "SessionNotFoundError",
    "SnapshotNotFoundError",
    "SyncSandbox",
    "WorkerChannel",
]
