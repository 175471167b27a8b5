"""Trajectory records at the face: `make(..., record=DIR)` for one local env, `rock_envs.replay` to
put an env at step k of a recorded episode, and `verify` (behind `rock-envs replay`) to re-run an
episode and report the first step where it differs: a non-determinism detector.

The record format is `rock_envs.core.trajectory`'s; vector envs record in `rock_envs.vector.recording`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator

from rock_envs.core import rng
from rock_envs.core.env import Env
from rock_envs.core.errors import EnvArgumentError, SnapshotError
from rock_envs.core.resets import call_reset
from rock_envs.core.snapshot import EnvSnapshot, replay_snapshot
from rock_envs.core.trajectory import Episode, EpisodeWriter, from_json, obs_hash, read_episode


class RecordedEnv(Env):
    """A local env whose episodes are written to a directory (`rock_envs.make(id, record=DIR)`)."""

    def __init__(self, env: Env, directory: str, kwargs: dict[str, Any]):
        self.env = env
        self.spec = env.spec
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.metadata, self.render_mode = env.metadata, env.render_mode
        env_id = env.spec.id if env.spec is not None else type(env).__name__
        self.writer = EpisodeWriter(directory, env_id, kwargs, 1, "local")

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        before = rng.before_reset(self.env, seed)
        obs, info = call_reset(self.env.reset, seed, options)
        self.writer.begin(0, rng.episode_start(self.env, seed, options, before), obs)
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.writer.step(0, action, float(reward), bool(terminated), bool(truncated), obs)
        return obs, reward, terminated, truncated, info

    def snapshot(self) -> EnvSnapshot:
        return self.env.snapshot()

    def restore(self, snapshot: EnvSnapshot) -> None:
        self.env.restore(snapshot)
        self.writer.finish(0, "restored")  # what follows is no longer the recorded episode

    def sample_random_action(self) -> Any:
        return self.env.sample_random_action()

    def render(self) -> Any:
        return self.env.render()

    @property
    def unwrapped(self) -> Any:
        return self.env.unwrapped

    @property
    def closed(self) -> bool:
        return bool(getattr(self.env, "closed", False))

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            self.env.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)


def _episode(record: str | os.PathLike[str] | Episode) -> Episode:
    return record if isinstance(record, Episode) else read_episode(os.fspath(record))


def _make(episode: Episode, backend: str | None, options: dict[str, Any]) -> Env:
    from rock_envs.make import make

    return make(episode.env_id, backend, **dict(episode.header.get("kwargs") or {}), **options)  # type: ignore[arg-type]


def replay(
    record: str | os.PathLike[str] | Episode,
    until_step: int | None = None,
    backend: str | None = None,
    **options: Any,
) -> Env:
    """An env at step `until_step` (default: the last) of the recorded episode `record` ("trace back
    to any state"): made from the record's id and kwargs on `backend` (default: local; `options` are
    the backend's, e.g. `url=` for remote), reset as it was, and stepped with its actions.

    Raises `SnapshotError` if the env does not reach the recorded observation (not deterministic)."""
    episode = _episode(record)
    steps = len(episode.steps)
    k = steps if until_step is None else until_step
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= steps:
        raise EnvArgumentError(f"`replay`: until_step must be in 0..{steps} (the episode's steps), got {until_step!r}.")
    env = _make(episode, backend, options)
    try:
        actions = [from_json(step["action"], env.action_space) for step in episode.steps[:k]]
        expected = episode.steps[k - 1]["obs"] if k else episode.reset_obs
        kwargs = dict(episode.header.get("kwargs") or {})
        env.restore(replay_snapshot(episode.env_id, kwargs, episode.start, actions, expected))
    except BaseException:
        env.close()
        raise
    return env


@dataclass(frozen=True)
class ReplayReport:
    """What `verify` found: `identical`, else the first differing `step` (0: the reset) and `field`."""

    path: str
    steps: int
    identical: bool
    step: int | None = None
    field: str | None = None
    expected: Any = None
    got: Any = None

    def __str__(self) -> str:
        if self.identical:
            return f"{self.path}: identical ({self.steps} steps)"
        where = "the reset" if self.step == 0 else f"step {self.step}"
        return f"{self.path}: differs at {where}: {self.field} expected {self.expected!r}, got {self.got!r}"


def verify(
    record: str | os.PathLike[str] | Episode, backend: str | None = None, env: Env | None = None, **options: Any
) -> ReplayReport:
    """Re-run the recorded episode (on `backend`, or in `env` if given) and compare every step's
    observation hash, reward and done flags with the record."""
    episode = _episode(record)
    own = env is None
    env = _make(episode, backend, options) if env is None else env
    try:
        return _verify(episode, env)
    finally:
        if own:
            env.close()


def _verify(episode: Episode, env: Env) -> ReplayReport:
    path, n = episode.path or episode.env_id, len(episode.steps)

    def differs(step: int, field: str, expected: Any, got: Any) -> ReplayReport:
        return ReplayReport(path, n, False, step, field, expected, got)

    start = episode.start
    if start.get("rng") is not None:  # an unseeded Gymnasium reset: start from its generator state
        kwargs = dict(episode.header.get("kwargs") or {})
        try:
            env.restore(replay_snapshot(episode.env_id, kwargs, start, [], episode.reset_obs))
        except SnapshotError:
            return differs(0, "obs", episode.reset_obs, "another observation")
    else:
        options = start.get("options")
        obs, _ = (
            env.reset(seed=start.get("seed")) if options is None else env.reset(seed=start["seed"], options=options)
        )
        if obs_hash(obs) != episode.reset_obs:
            return differs(0, "obs", episode.reset_obs, obs_hash(obs))
    for step in episode.steps:
        obs, reward, terminated, truncated, _ = env.step(from_json(step["action"], env.action_space))
        t = int(step["t"])
        if obs_hash(obs) != step["obs"]:
            return differs(t, "obs", step["obs"], obs_hash(obs))
        if float(reward) != float(step["reward"]):
            return differs(t, "reward", step["reward"], float(reward))
        if bool(terminated) != step["terminated"] or bool(truncated) != step["truncated"]:
            got = {"terminated": bool(terminated), "truncated": bool(truncated)}
            return differs(t, "done", {"terminated": step["terminated"], "truncated": step["truncated"]}, got)
    return ReplayReport(path, n, True)


def episodes_in(path: str | os.PathLike[str]) -> Iterator[Episode]:
    """The episode in file `path`, or every `*.jsonl` episode in directory `path` (sorted by name)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        names = sorted(name for name in os.listdir(path) if name.endswith(".jsonl"))
        if not names:
            raise EnvArgumentError(f"`replay`: no *.jsonl episode records in {path}.")
        for name in names:
            yield read_episode(os.path.join(path, name))
    else:
        yield read_episode(path)
