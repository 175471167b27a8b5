"""A tiny LLM agent that solves a programming task by calling an OpenAI-compatible chat API.

Runs inside a sandbox (OPENAI_BASE_URL and OPENAI_API_KEY set). Reads the task statement from the
file given as argv[1], asks the model once, writes the first ```python block to solution.py, and
prints one JSON line: {"kind": "code", "turns": 1, "wrote": "solution.py"}. The trainer then checks
the solution by running the task's tests in the same sandbox.
"""

import json
import re
import sys

import openai


def main() -> None:
    statement = open(sys.argv[1]).read()
    client = openai.OpenAI(max_retries=0, timeout=300)
    stream = client.chat.completions.create(
        model="policy",
        stream=True,
        messages=[
            {"role": "system", "content": "You write correct, minimal Python."},
            {"role": "user", "content": statement},
        ],
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    block = re.search(r"```python\n?(.*?)```", text, re.DOTALL)
    with open("solution.py", "w") as fh:
        fh.write(block.group(1) if block else text)
    print(json.dumps({"kind": "code", "turns": 1, "wrote": "solution.py"}))


if __name__ == "__main__":
    main()
