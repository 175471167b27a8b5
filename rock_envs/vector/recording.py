"""`make_vec(..., record="DIR")`: every episode of every env written to DIR as JSON Lines.

The recorder sits beside the vector env's calls: it learns which envs were reset or stepped with
which actions, then reads the results as the caller gets them, autoreset mode and all. Where an
episode starts comes from the worker (`Make(record=True)`: each reset's info carries
`episode_start`, its seed or RNG state as a JSON string), and is taken out of the infos again, so
recording changes nothing the caller sees. The files are `rock_envs.core.trajectory`'s.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from gymnasium.vector import AutoresetMode

from rock_envs.core.trajectory import EpisodeWriter

START = "episode_start"


def _pick(infos: dict[str, Any], key: str, k: int) -> Any:
    mask = infos.get(f"_{key}")
    if mask is None or not mask[k]:
        return None
    return infos[key][k]


class Recorder:
    """Turns a vector env's calls and results into `EpisodeWriter` calls."""

    def __init__(
        self,
        directory: str,
        env_id: str | Sequence[str],
        kwargs: dict[str, Any] | Sequence[dict[str, Any]],
        num_envs: int,
        mode: AutoresetMode,
        row: Callable[[Any, int], Any],
        backend: str,
    ):
        self.writer = EpisodeWriter(directory, env_id, kwargs, num_envs, backend)
        self.mode, self.row = mode, row
        self.pending: dict[int, tuple[str, Any]] = {}
        self.ended = [False] * num_envs  # next_step: the env's next step is its autoreset

    def sent_reset(self, ids: Sequence[int]) -> None:
        for i in ids:
            self.pending[i] = ("reset", None)

    def sent_step(self, ids: Sequence[int], actions: Any) -> None:
        for k, i in enumerate(ids):
            self.pending[i] = ("step", actions[k])

    def results(
        self,
        ids: Sequence[int],
        positions: Sequence[int],
        obs: Any,
        rewards: Any,
        terms: Any,
        truncs: Any,
        infos: dict[str, Any],
    ) -> None:
        """Env `ids[k]`'s result is row `positions[k]` of the batches and of `infos` (whose
        `episode_start` entries this takes out)."""
        starts = {k: _pick(infos, START, k) for k in set(positions)}
        infos.pop(f"_{START}", None)
        infos.pop(START, None)
        w = self.writer
        for i, k in zip(ids, positions):
            kind, action = self.pending.pop(i, ("step", None))
            o, start = self.row(obs, k), starts[k]
            if kind == "reset" or _pick(infos, "worker_restarted", k):
                w.finish(i, "reset" if kind == "reset" else "worker_restarted")
                self._begin(i, start, o)
                continue
            if self.ended[i]:  # next_step: this step was the autoreset
                self._begin(i, start, o)
                continue
            te, tr = bool(terms[k]), bool(truncs[k])
            same_step = self.mode is AutoresetMode.SAME_STEP and (te or tr)
            w.step(i, action, float(rewards[k]), te, tr, _pick(infos, "final_obs", k) if same_step else o)
            if te or tr:
                if same_step:
                    self._begin(i, start, o)
                else:
                    self.ended[i] = self.mode is AutoresetMode.NEXT_STEP

    def _begin(self, i: int, start: Any, obs: Any) -> None:
        self.ended[i] = False
        if start is not None:  # else (a rebuild restored it from a snapshot): no episode start is known
            self.writer.begin(i, json.loads(start), obs)

    def interrupted(self, ids: Sequence[int], reason: str = "worker_restarted") -> None:
        """Envs whose state changed behind their episode's back (their worker died and rebuilt them,
        or a snapshot was restored into them): their episodes end here."""
        for i in ids:
            self.writer.finish(i, reason)
            self.ended[i] = False

    def copied(self, src: int, dsts: Sequence[int]) -> None:
        """Envs forked from `src`: each goes on with a copy of `src`'s episode so far."""
        for i in dsts:
            self.writer.copy(src, i)
            self.ended[i] = self.ended[src]

    def close(self) -> None:
        self.writer.close()
