"""ROCK's request bodies as rl-rock 1.11.0 sends them: unknown keys are ignored, as ROCK does."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SandboxRef(_Lenient):
    sandbox_id: str = Field(min_length=1, max_length=256)


class StartRequest(_Lenient):
    image: str = Field("python:3.11", min_length=1)
    image_os: str = "linux"
    memory: Union[str, int] = "8g"
    cpus: float = Field(2.0, gt=0, le=1024)
    limit_cpus: Optional[float] = Field(None, gt=0, le=1024)
    auto_clear_time_minutes: Optional[int] = Field(None, ge=0)
    auto_clear_time: Optional[int] = Field(None, ge=0)
    sandbox_id: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    startup_timeout: Optional[float] = None


class CreateSession(SandboxRef):
    session: str = "default"
    session_type: str = "bash"
    startup_source: list[str] = Field(default_factory=list)
    env_enable: bool = False
    env: Optional[dict[str, str]] = None
    remote_user: Optional[str] = None


class SessionAction(SandboxRef):
    session: str = "default"
    command: str
    check: Literal["raise", "silent", "ignore"] = "raise"
    timeout: Optional[float] = Field(None, gt=0)


class CloseSession(SandboxRef):
    session: str = "default"


class Execute(SandboxRef):
    command: Union[str, list[str]]
    timeout: Optional[float] = Field(1200, gt=0)
    cwd: Optional[str] = None
    env: Optional[dict[str, str]] = None
    shell: bool = False


class WriteFile(SandboxRef):
    path: str = Field(min_length=1)
    content: str


class ReadFile(SandboxRef):
    path: str = Field(min_length=1)
    encoding: Optional[str] = None
    errors: Optional[str] = None


class BatchStatus(_Lenient):
    sandbox_ids: list[str] = Field(default_factory=list, max_length=10_000)


class GemMake(_Lenient):
    env_id: str = Field(min_length=1)


class GemRef(_Lenient):
    sandbox_id: str = Field(min_length=1)


class GemReset(GemRef):
    seed: Optional[int] = None


class GemStep(GemRef):
    action: str
