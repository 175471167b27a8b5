"""Trajectory records: one episode per JSON Lines file, readable (and replayable) by anyone.

A record is a header line, the reset, one line per step, and an end line::

    {"kind": "episode", "format": 1, "env_id": "game:Sokoban-v0-easy", "kwargs": {}, "index": 0,
     "episode": 0, "seed": 7, "options": null, "rng": null, "created_at": 1767225600.0}
    {"kind": "reset", "obs": "3f9a..."}
    {"kind": "step", "t": 1, "action": "\\\\boxed{up}", "reward": 0.0, "terminated": false,
     "truncated": false, "obs": "c0de..."}
    {"kind": "end", "steps": 1, "reason": "terminated"}

`seed` is the seed the episode was reset with (given, or derived by the env: see
`rock_envs.core.rng.episode_start`); `rng` is the generator state an unseeded Gymnasium reset
continued from, when there was no seed. `obs` is `obs_hash` of the observation. An episode cut
short (the vector env closed, its worker restarted) ends with that reason.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from gymnasium import spaces

FORMAT = 1


def _feed(h: Any, obs: Any) -> None:
    if isinstance(obs, str):
        h.update(b"s")
        h.update(obs.encode("utf-8", "surrogatepass"))
    elif isinstance(obs, np.ndarray):
        arr = np.ascontiguousarray(obs)
        h.update(f"a{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    elif isinstance(obs, (bool, int, float, np.generic)) or obs is None:
        h.update(f"n{obs!r}".encode())
    elif isinstance(obs, dict):
        h.update(b"d")
        for key in sorted(obs, key=str):
            h.update(f"{key!s}=".encode())
            _feed(h, obs[key])
    elif isinstance(obs, (tuple, list)):
        h.update(f"t{len(obs)}".encode())
        for item in obs:
            _feed(h, item)
    elif isinstance(obs, bytes):
        h.update(b"b")
        h.update(obs)
    else:
        h.update(f"r{type(obs).__qualname__}{obs!r}".encode())


def obs_hash(obs: Any) -> str:
    """A short hash of an observation that is the same in every process and on every machine."""
    h = hashlib.blake2b(digest_size=12)
    _feed(h, obs)
    return h.hexdigest()


def to_json(value: Any) -> Any:
    """`value` (an action, kwargs, options) as JSON data: numpy arrays become lists, numbers numbers."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN or inf
    return value


def from_json(value: Any, space: spaces.Space | None) -> Any:
    """An action read from a record, as the env's action space takes it."""
    if isinstance(space, spaces.Discrete):
        return int(value)
    if isinstance(space, (spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)):
        return np.asarray(value, dtype=space.dtype)
    if isinstance(space, spaces.Tuple):
        return tuple(from_json(v, s) for v, s in zip(value, space.spaces))
    if isinstance(space, spaces.Dict):
        return {k: from_json(value[k], s) for k, s in space.spaces.items()}
    return value


def check_json(value: Any, what: str, call: str) -> None:
    """Raise `EnvArgumentError` unless `value` can go in a record."""
    from rock_envs.core.errors import EnvArgumentError

    try:
        json.dumps(to_json(value))
    except (TypeError, ValueError) as exc:
        raise EnvArgumentError(
            f"`{call}`: record= writes the env's {what} as JSON, but {exc}; pass only JSON-able {what} "
            "(str, numbers, lists, dicts) when recording."
        ) from None


@dataclass
class Episode:
    """One recorded episode: its header, the reset observation's hash, and its steps."""

    header: dict[str, Any]
    reset_obs: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None
    path: str = ""

    @property
    def env_id(self) -> str:
        return str(self.header["env_id"])

    @property
    def start(self) -> dict[str, Any]:
        """How to start this episode again (see `rock_envs.core.rng.start_episode`)."""
        return {k: self.header.get(k) for k in ("seed", "options", "rng")}

    def lines(self) -> list[dict[str, Any]]:
        out = [self.header, {"kind": "reset", "obs": self.reset_obs}, *self.steps]
        return out + ([self.end] if self.end is not None else [])

    def dumps(self) -> str:
        return "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in self.lines())


def read_episode(path: str) -> Episode:
    """The episode in the JSON Lines file `path`; `EnvArgumentError` if it is not one."""
    from rock_envs.core.errors import EnvArgumentError

    def bad(why: str) -> EnvArgumentError:
        return EnvArgumentError(f"`replay`: {path} is not a rock-envs episode record: {why}.")

    try:
        with open(path, encoding="utf-8") as fh:
            lines = [json.loads(line) for line in fh if line.strip()]
    except OSError as exc:
        raise EnvArgumentError(f"`replay`: cannot read {path}: {exc.strerror or exc}.") from None
    except json.JSONDecodeError as exc:
        raise bad(f"line {exc.lineno} is not JSON ({exc.msg}); the file may be truncated") from None
    if not lines or lines[0].get("kind") != "episode" or "env_id" not in lines[0]:
        raise bad('its first line must be the {"kind": "episode", ...} header')
    if lines[0].get("format") != FORMAT:
        raise bad(f"format {lines[0].get('format')!r}, this rock-envs reads format {FORMAT}")
    episode = Episode(lines[0], path=path)
    for number, line in enumerate(lines[1:], 2):
        kind = line.get("kind")
        if kind == "reset":
            episode.reset_obs = line.get("obs")
        elif kind == "step":
            if "action" not in line:
                raise bad(f"line {number} is a step without an action")
            episode.steps.append(line)
        elif kind == "end":
            episode.end = line
        else:
            raise bad(f"line {number} has an unknown kind {kind!r}")
    return episode


class EpisodeWriter:
    """Writes the episodes of envs `0..num_envs-1` to `directory`, one file per episode, each when it
    ends (`finish`) or when the writer closes (reason "closed")."""

    def __init__(
        self,
        directory: str,
        env_id: str | Sequence[str],
        kwargs: dict[str, Any] | Sequence[dict[str, Any]],
        num_envs: int,
        backend: str,
    ):
        """`env_id` and `kwargs`: the envs', or one list of each with env i's (a mixed batch)."""
        os.makedirs(directory, exist_ok=True)
        self.directory, self.backend = directory, backend
        self.env_ids = [env_id] * num_envs if isinstance(env_id, str) else list(env_id)
        per_env = [kwargs] * num_envs if isinstance(kwargs, dict) else list(kwargs)
        self.kwargs = [to_json(k) for k in per_env]
        self.run = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
        self.episodes: list[Episode | None] = [None] * num_envs
        self.counts = [0] * num_envs
        self.paths: list[str] = []

    def begin(self, i: int, start: dict[str, Any], obs: Any) -> None:
        """Env `i` was reset (`start` from `rock_envs.core.rng.episode_start`) to observation `obs`."""
        self.finish(i, "reset")
        header = {
            "kind": "episode",
            "format": FORMAT,
            "env_id": self.env_ids[i],
            "kwargs": self.kwargs[i],
            "index": i,
            "episode": self.counts[i],
            "seed": start.get("seed"),
            "options": to_json(start.get("options")),
            "rng": start.get("rng"),
            "backend": self.backend,
            "created_at": time.time(),
        }
        self.counts[i] += 1
        self.episodes[i] = Episode(header, obs_hash(obs))

    def step(self, i: int, action: Any, reward: float, terminated: bool, truncated: bool, obs: Any) -> None:
        """Env `i` took `action`; an episode that ends here is written."""
        episode = self.episodes[i]
        if episode is None:
            return  # stepped outside an episode (before a reset, or after its end without one)
        episode.steps.append(
            {
                "kind": "step",
                "t": len(episode.steps) + 1,
                "action": to_json(action),
                "reward": float(reward),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
                "obs": obs_hash(obs),
            }
        )
        if terminated or truncated:
            self.finish(i, "terminated" if terminated else "truncated")

    def copy(self, src: int, dst: int) -> None:
        """Env `dst` now is a copy of env `src` (a fork): its episode goes on from a copy of `src`'s."""
        self.finish(dst, "restored")
        episode = self.episodes[src]
        if episode is not None:
            header = {**episode.header, "index": dst, "episode": self.counts[dst], "forked_from": src}
            self.counts[dst] += 1
            self.episodes[dst] = Episode(header, episode.reset_obs, [dict(step) for step in episode.steps])

    def finish(self, i: int, reason: str) -> None:
        episode, self.episodes[i] = self.episodes[i], None
        if episode is None:
            return
        episode.end = {"kind": "end", "steps": len(episode.steps), "reason": reason}
        name = f"{self.run}-env{i:04d}-ep{int(episode.header['episode']):05d}.jsonl"
        episode.path = os.path.join(self.directory, name)
        with open(episode.path, "w", encoding="utf-8") as fh:
            fh.write(episode.dumps())
        self.paths.append(episode.path)

    def active(self, i: int) -> bool:
        return self.episodes[i] is not None

    def close(self) -> None:
        for i in range(len(self.episodes)):
            self.finish(i, "closed")
