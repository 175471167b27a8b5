"""Assembling: workers' batches (and per-env results) into what Gymnasium's vector API returns.

`Assembler.assemble` gives `reset`/`step` their batch of every env, `rows` gives `recv` the rows of
the envs it returns; both keep the last observation of every env, which a masked reset answers with
for the envs it did not reset. A batch handed out is never written to afterwards.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium import spaces

from rock_envs.core.batching import ObsBatcher
from rock_envs.vector.dispatcher import Result
from rock_envs.vector.infos import merge_infos
from rock_envs.worker.protocol import Batch


class Assembler:
    def __init__(self, num_envs: int, space: spaces.Space):
        self.num_envs = num_envs
        self.obs = ObsBatcher(space)
        self.last: Any = None  # the last obs of every env (a batch, or a list of items)

    def rows(self, ids: list[int], results: list[Result]):
        """`recv`'s rows: the results of `ids`, in that order."""
        self.remember(ids, [r.obs for r in results])
        rewards, terms, truncs, infos = self.columns(results, len(ids), range(len(ids)))
        return self.obs.batch([r.obs for r in results]), rewards, terms, truncs, infos

    def assemble(self, ids: list[int], batches: list[Batch], ready: dict[int, Result]):
        """Rows `ids` from whole batches (and per-env results of rebuilt envs), as Gymnasium returns them."""
        n = self.num_envs
        got = [i for b in batches for i in b.env_ids]
        if not ready and got != ids and len(batches) > 1:  # workers answer in any order; their blocks are contiguous
            batches = sorted(batches, key=lambda b: b.env_ids[0] if b.env_ids else -1)
            got = [i for b in batches for i in b.env_ids]
        if not ready and got == ids:  # the hot path: batches cover `ids` in order
            obs: Any = self.obs.join([b.obs for b in batches])
            infos_list = [info for b in batches for info in b.infos]
            if len(ids) == n:
                if len(batches) == 1:
                    b = batches[0]
                    rewards = np.array(b.rewards, dtype=np.float64)
                    terms = np.array(b.terminated, dtype=np.bool_)
                    truncs = np.array(b.truncated, dtype=np.bool_)
                else:  # lists from frames, arrays from a subprocess worker's lane: both join in C
                    rewards = np.concatenate([np.asarray(b.rewards, dtype=np.float64) for b in batches])
                    terms = np.concatenate([np.asarray(b.terminated, dtype=np.bool_) for b in batches])
                    truncs = np.concatenate([np.asarray(b.truncated, dtype=np.bool_) for b in batches])
                infos = merge_infos(infos_list, n) if any(infos_list) else {}
                self.last = obs
                return self.public(obs), rewards, terms, truncs, infos
            row = self.obs.row
            results = [
                Result(row(obs, k), b.rewards[j], b.terminated[j], b.truncated[j], b.infos[j])
                for k, (b, j) in enumerate((b, j) for b in batches for j in range(len(b.env_ids)))
            ]
        else:
            by_id: dict[int, Result] = {}
            for b in batches:
                for k, i in enumerate(b.env_ids):
                    by_id[i] = Result(self.obs.row(b.obs, k), b.rewards[k], b.terminated[k], b.truncated[k], b.infos[k])
            by_id.update(ready)
            results = [by_id[i] for i in ids]
        self.remember(ids, [r.obs for r in results])
        rewards, terms, truncs, infos = self.columns(results, n, ids)
        return self.public(self.last, copy=len(ids) < n), rewards, terms, truncs, infos

    def remember(self, ids: Sequence[int], rows: list[Any]) -> None:
        """Update the last obs of `ids`; a masked reset answers for every env, with these."""
        if self.obs.kind == "items":
            last = list(self.last) if self.last is not None else [None] * self.num_envs
            for i, o in zip(ids, rows):
                last[i] = o
            self.last = last
            return
        if len(ids) == self.num_envs and list(ids) == list(range(self.num_envs)):
            self.last = self.obs.pack(rows)
            return
        base = self.obs.empty(self.num_envs) if self.last is None else self.obs.join([self.last])
        if rows:
            self.obs.set_rows(base, list(ids), rows)
        self.last = base  # a new batch: one handed out before is never written to

    def public(self, obs: Any, copy: bool = False) -> Any:
        """The batch the caller gets: "items" batched as Gymnasium does, arrays as they are (or a copy)."""
        if self.obs.kind == "items":
            return self.obs.batch(obs if isinstance(obs, list) else list(obs))
        return self.obs.join([obs]) if copy else obs

    def columns(self, results: list[Result], n: int, positions: Sequence[int]):
        rewards = np.zeros(n, dtype=np.float64)
        terms = np.zeros(n, dtype=np.bool_)
        truncs = np.zeros(n, dtype=np.bool_)
        pos = list(positions)
        if results:
            rewards[pos] = [r.reward for r in results]
            terms[pos] = [r.terminated for r in results]
            truncs[pos] = [r.truncated for r in results]
        infos = merge_infos([r.info for r in results], n, pos)
        return rewards, terms, truncs, infos


__all__ = ["Assembler"]
