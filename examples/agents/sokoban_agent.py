"""A tiny LLM agent that plays GEM's Sokoban by calling an OpenAI-compatible chat API.

Runs inside a sandbox: the endpoint and key come from OPENAI_BASE_URL and OPENAI_API_KEY. Prints one
JSON line at the end: {"kind": "sokoban", "reward": ..., "turns": ..., "solved": ...}.
"""

import json
import re
import sys

import gem
import openai


def main() -> None:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    client = openai.OpenAI(max_retries=0, timeout=300)
    env = gem.make("game:Sokoban-v0-easy")
    instructions, info = env.reset(seed=seed)
    messages = [{"role": "system", "content": instructions}, {"role": "user", "content": info["suffix"]}]
    total, turns, done = 0.0, 0, False
    while not done:
        reply = client.chat.completions.create(model="policy", messages=messages, temperature=1.0)
        text = reply.choices[0].message.content or ""
        move = re.search(r"\\boxed\{(\w+)\}", text)
        obs, reward, terminated, truncated, info = env.step(f"\\boxed{{{move.group(1) if move else 'up'}}}")
        total, turns, done = total + float(reward), turns + 1, terminated or truncated
        messages += [{"role": "assistant", "content": text}, {"role": "user", "content": obs + "\n" + info["suffix"]}]
    print(json.dumps({"kind": "sokoban", "reward": total, "turns": turns, "solved": total > 0.5}))


if __name__ == "__main__":
    main()
