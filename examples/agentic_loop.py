"""The agentic RL loop, closed: agents in sandboxes call the chat API, the trainer answers every call.

    python examples/agentic_loop.py [--n 8] [--runtime process|docker] [--base-url URL --token T] [--faults]

Each of N sandboxes runs a tiny agent script shipped in examples/agents/: even ones play
game:Sokoban-v0-easy, odd ones solve a task of code:RockTasks-v0. The agents use the official openai
client against OPENAI_BASE_URL, which the sandbox has; the calls come here through
`sb.model_service`. A scripted policy (a Sokoban solver and known solutions, so nothing is
downloaded) stands in for the model a trainer would sample from. After each episode the trainer
reads the sandbox's trajectory (every call and answer, in order) and its reward: the env's return
for Sokoban, the task's tests run in the same sandbox for code. It prints a summary.

A rollout that broke for the infrastructure (its sandbox did not start or died, a model call timed
out or failed upstream, the check could not run) carries `infra_error` = {phase, type, message}; the
trainer masks it out of the batch, never learning from it, and runs it again (`--retries`). An
agent that fails on its own (a bad answer, a failing solution) is kept, with its low reward.
`--faults` injects one: the first call of every fourth episode is failed as if the policy server
were down, the first time round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rock_envs.sandbox import Sandbox, SandboxConfig, SandboxError
from rock_envs.sandbox.model_service import ModelCall, trajectory_infra_error
from rock_envs.sandbox.model_service.infra import from_exception
from rock_envs.tasks.code_tasks import TASKS, acheck

AGENTS = Path(__file__).resolve().parent / "agents"

# ---- the scripted policy: what a model would answer ---------------------------------------------

MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
SOLUTIONS = {
    "add": "def add(a, b):\n    return a + b\n",
    "reverse_words": "def reverse_words(s):\n    return ' '.join(reversed(s.split()))\n",
    "fizzbuzz": "def fizzbuzz(n):\n    return ['FizzBuzz' if i % 15 == 0 else 'Fizz' if i % 3 == 0 else "
    "'Buzz' if i % 5 == 0 else str(i) for i in range(1, n + 1)]\n",
    "is_palindrome": "def is_palindrome(s):\n    t = [c.lower() for c in s if c.isalnum()]\n    return t == t[::-1]\n",
    "running_sum": "def running_sum(xs):\n    out, total = [], 0\n    for x in xs:\n        total += x\n"
    "        out.append(total)\n    return out\n",
}


def solve_sokoban(board: str) -> str | None:
    """The first move of a shortest solution (breadth-first over player and box positions)."""
    rows = [line.split() for line in board.strip().splitlines()]
    cells = {(r, c): ch for r, row in enumerate(rows) for c, ch in enumerate(row)}
    walls = {p for p, ch in cells.items() if ch == "#"}
    goals = {p for p, ch in cells.items() if ch in "O√S"}
    boxes = frozenset(p for p, ch in cells.items() if ch in "X√")
    player = next((p for p, ch in cells.items() if ch in "PS"), None)
    if player is None:
        return None
    seen, queue = {(player, boxes)}, deque([(player, boxes, None)])
    while queue:
        pos, bxs, first = queue.popleft()
        if bxs <= goals:
            return first
        for name, (dr, dc) in MOVES.items():
            nxt = (pos[0] + dr, pos[1] + dc)
            if nxt in walls:
                continue
            nb = bxs
            if nxt in bxs:
                beyond = (nxt[0] + dr, nxt[1] + dc)
                if beyond in walls or beyond in bxs:
                    continue
                nb = (bxs - {nxt}) | {beyond}
            if (nxt, nb) not in seen and len(seen) < 200_000:
                seen.add((nxt, nb))
                queue.append((nxt, nb, first or name))
    return None


def policy(call: ModelCall) -> str:
    """Answer like a model would: a Sokoban move in \\boxed{}, or a solution in a ```python block."""
    last = str(call.messages[-1].get("content") or "") if call.messages else ""
    for name, task in TASKS.items():
        if task.statement in last:
            return f"Here is solution.py:\n```python\n{SOLUTIONS[name]}```"
    boards = re.findall(r"board layout:\n((?:[#_OX√PS] ?)+\n(?:(?:[#_OX√PS] ?)+\n?)*)", last)
    move = solve_sokoban(boards[-1]) if boards else None
    return f"I push on. \\boxed{{{move or 'up'}}}"


# ---- the loop -----------------------------------------------------------------------------------


@dataclass
class Episode:
    sandbox_id: str
    kind: str
    reward: float
    calls: int
    ok: bool
    note: str = ""
    infra_error: dict[str, str] | None = None
    """Set when the rollout broke for the infrastructure: masked out of the batch and run again."""


async def episode(i: int, config: SandboxConfig, python: str, fault: bool = False) -> Episode:
    kind = "sokoban" if i % 2 == 0 else f"code:{sorted(TASKS)[(i // 2) % len(TASKS)]}"
    try:
        sb = await Sandbox(config).start()
    except SandboxError as exc:
        return Episode("-", kind, 0.0, 0, False, str(exc)[-300:], from_exception("start", exc))
    try:
        return await play(sb, i, kind, python, fault)
    except SandboxError as exc:  # the sandbox died under the episode
        return Episode(sb.id, kind, 0.0, 0, False, str(exc)[-300:], from_exception("exec", exc))
    finally:
        await sb.stop()


async def play(sb: Sandbox, i: int, kind: str, python: str, fault: bool) -> Episode:
    await sb.upload(AGENTS, "agents")
    task = None
    if i % 2 == 0:
        cmd = f"{python} agents/sokoban_agent.py {i}"
    else:
        task = TASKS[kind.split(":", 1)[1]]
        await sb.write_file("task.txt", task.statement)
        cmd = f"{python} agents/code_agent.py task.txt"
    service = sb.model_service
    run = asyncio.ensure_future(sb.arun(cmd, timeout=300))

    async def answer() -> None:
        inject = fault
        async for call in service.calls():
            if inject:  # as if the policy server were down for this call
                inject = False
                await call.fail("injected fault: the policy server is down")
                continue
            await call.respond(policy(call), usage={"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})

    answering = asyncio.ensure_future(answer())
    try:
        result = await run
    finally:
        answering.cancel()
        await asyncio.gather(answering, return_exceptions=True)
    records = await service.trajectory()
    broken = trajectory_infra_error(records)
    if broken is not None:  # the agent failed because a model call did: not the agent's doing
        return Episode(sb.id, kind, 0.0, len(records), False, broken["message"], broken)
    if result.exit_code != 0:  # the agent itself crashed: its rollout counts, with no reward
        return Episode(sb.id, kind, 0.0, len(records), False, (result.stderr or result.output)[-500:])
    outcome = json.loads(result.output.strip().splitlines()[-1])
    if task is None:
        reward = float(outcome["reward"])
    else:
        try:
            passed, _ = await acheck(sb, task, python=python)
        except SandboxError as exc:
            return Episode(sb.id, kind, 0.0, len(records), False, str(exc)[-300:], from_exception("verify", exc))
        reward = 1.0 if passed else 0.0
    answered = sum(r.status == "answered" for r in records)
    return Episode(sb.id, kind, reward, len(records), answered == len(records) == outcome["turns"])


async def main(
    n: int = 8,
    runtime: str = "process",
    base_url: str | None = None,
    token: str | None = None,
    runtime_dir: str | None = None,
    image: str | None = None,
    faults: bool = False,
    retries: int = 2,
) -> list[Episode]:
    fields: dict[str, Any] = {"runtime": runtime, "model_service": "trainer", "memory": "1g"}
    if base_url:
        fields.update(base_url=base_url, token=token)
    else:
        fields.update(runtime_dir=runtime_dir)
    if image:
        fields["image"] = image
    python = sys.executable if runtime == "process" else "python3"
    config = SandboxConfig(**fields)
    episodes = list(await asyncio.gather(*(episode(i, config, python, faults and i % 4 == 1) for i in range(n))))
    masked = 0
    for attempt in range(1, retries + 1):  # infra-failed rollouts are masked out and run again
        again = [i for i, ep in enumerate(episodes) if ep.infra_error is not None]
        if not again:
            break
        for i in again:
            ep, masked = episodes[i], masked + 1
            assert ep.infra_error is not None
            print(f"masked {ep.sandbox_id} {ep.kind}: infra_error {ep.infra_error['phase']}/{ep.infra_error['type']}")
        redone = await asyncio.gather(*(episode(i, config, python) for i in again))
        for i, ep in zip(again, redone):
            episodes[i] = ep
    batch = [ep for ep in episodes if ep.infra_error is None]  # what the trainer learns from
    for ep in episodes:
        print(
            f"{ep.sandbox_id}  {ep.kind:<22} reward={ep.reward:.1f}  calls={ep.calls:<3} "
            f"{'ok' if ep.ok else 'FAILED ' + ep.note}"
        )
    solved = sum(ep.reward > 0.5 for ep in batch)
    print(
        f"summary: {len(batch)} episodes, {solved} solved, {sum(ep.calls for ep in batch)} calls answered, "
        f"mean reward {sum(ep.reward for ep in batch) / max(1, len(batch)):.2f}; "
        f"{masked} infra-failed rollouts masked and retried, {len(episodes) - len(batch)} still failed"
    )
    return episodes


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="sandboxes (episodes) at once")
    parser.add_argument("--runtime", default="process", choices=["process", "docker"])
    parser.add_argument("--image", default=None, help="docker runtime: the image (needs rock-envs and openai)")
    parser.add_argument("--base-url", default=None, help="a `rock-envs serve` URL; default: embedded")
    parser.add_argument("--token", default=None)
    parser.add_argument("--faults", action="store_true", help="fail the first call of every fourth episode once")
    parser.add_argument("--retries", type=int, default=2, help="times an infra-failed rollout is run again")
    args = parser.parse_args()
    asyncio.run(
        main(
            args.n, args.runtime, args.base_url, args.token, image=args.image, faults=args.faults, retries=args.retries
        )
    )
