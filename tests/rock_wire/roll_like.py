"""What ROLL does with rl-rock, written for these tests (ROCK_WIRE.md §2.1, §2.2): the calls of its
`SandboxManagerV2` and of its Sokoban sandbox env, made with rl-rock's own client."""

from __future__ import annotations

import asyncio
import json
import re
import textwrap
from typing import Any

PID_LINE = re.compile(r"\[\d+\]\s+(\d+)$")

SERVER = textwrap.dedent(
    """
    import json, rock_envs
    from http.server import BaseHTTPRequestHandler, HTTPServer
    env = rock_envs.make("game:Sokoban-v0-easy")
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if body["op"] == "reset":
                obs, info = env.reset(seed=body["seed"])
                out = {"observation": obs}
            else:
                obs, reward, term, trunc, info = env.step(body["action"])
                out = {"observation": obs, "reward": reward, "terminated": term, "truncated": trunc}
            data = json.dumps(out).encode()
            self.send_response(200); self.end_headers(); self.wfile.write(data)
    HTTPServer(("127.0.0.1", 8001), Handler).serve_forever()
    """
)
CLIENT = textwrap.dedent(
    """
    import json, sys, urllib.request
    op = sys.argv[1]
    body = {"op": op, "seed": int(sys.argv[3])} if op == "reset" else {"op": op, "action": sys.argv[2]}
    req = urllib.request.Request("http://127.0.0.1:8001/", data=json.dumps(body).encode(), method="POST")
    print(urllib.request.urlopen(req, timeout=30).read().decode())
    """
)


async def start_sandbox(rock: Any) -> Any:
    """`SandboxManagerV2.start_sandbox`: ROLL's config, its deprecated `xrl_authorization` for the token."""
    from rock.sdk.sandbox.client import Sandbox

    config = rock.config(
        image="python:3.11",
        auto_clear_seconds=3600,
        startup_timeout=600,
        user_id="0000",
        experiment_id="test",
        xrl_authorization=rock.token,
        extra_headers={},
    )
    sandbox = Sandbox(config)
    await sandbox.start()
    assert (await sandbox.is_alive()).is_alive
    return sandbox


async def create_session(sandbox: Any, name: str) -> None:
    from rock.actions import CreateBashSessionRequest

    await sandbox.create_session(
        CreateBashSessionRequest(session=name, startup_source=["/root/.bashrc"], env_enable=True, env={"HOME": "/root"})
    )


async def run_in_session(sandbox: Any, session: str, cmd: str, execute: bool = False) -> tuple[int | None, str]:
    """ROLL's `run_in_session`: the deprecated call with check="silent", or `execute` of bash -c."""
    from rock.actions import BashAction, Command

    if execute:
        r = await sandbox.execute(Command(command=["/bin/bash", "-c", cmd]))
        return r.exit_code, r.stdout
    obs = await sandbox.run_in_session(BashAction(session=session, command=cmd, check="silent"))
    return obs.exit_code, obs.output


def extract_pid(output: str) -> int | None:
    lines = output.strip().splitlines()
    match = PID_LINE.search(lines[-1].strip()) if lines else None
    return int(match.group(1)) if match else None


async def run_session_with_timeout(sandbox: Any, session: str, cmd: str, timeout: float, out: str) -> tuple[str, str]:
    """ROLL's own nohup loop: the `[N] PID` job line, `kill -0` until it fails, then the log."""
    _, started = await run_in_session(sandbox, session, f"nohup {cmd} < /dev/null > {out} 2>&1 &")
    pid = extract_pid(started)
    if pid is None:
        return "no-pid", started
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        code, _ = await run_in_session(sandbox, session, f"kill -0 {pid}")
        if code != 0:
            _, text = await run_in_session(sandbox, session, f"head -c 10000 {out}")
            return "success", text
        await asyncio.sleep(0.5)
    return "timeout", ""


class SokobanSandboxEnv:
    """ROLL's `SokobanSandboxEnv`: a server in its own session, health checks with curl, reset and step
    as commands whose output is JSON."""

    def __init__(self, rock: Any):
        self.rock, self.sandbox = rock, None

    async def start(self) -> None:
        from rock.actions import CreateBashSessionRequest

        self.sandbox = sb = self.rock.sandbox(image="python:3.11", auto_clear_seconds=7200, startup_timeout=360)
        await sb.start()
        await sb.write_file_by_path(SERVER, "/app/server.py")
        await sb.write_file_by_path(CLIENT, "/app/client.py")
        await sb.create_session(CreateBashSessionRequest(session="default"))
        await sb.create_session(CreateBashSessionRequest(session="server_session"))
        await sb.arun("cd /app && python server.py &", session="server_session", mode="normal")
        check = 'curl -s -o /dev/null -w "HC_CODE_%{http_code}_HC_CODE" http://localhost:8001/'
        for _ in range(600):
            try:  # arun raises while curl fails (connection refused): ROLL catches it and polls again
                if "HC_CODE_200_HC_CODE" in (await sb.arun(check, session="default")).output:
                    return
            except Exception:
                pass
            await asyncio.sleep(0.1)
        raise TimeoutError("the env server in the sandbox never answered")

    async def reset(self, seed: int) -> str:
        out = await self.sandbox.arun(f"cd /app && python client.py reset --seed {seed} --json", session="default")
        return str(json.loads(out.output.strip())["observation"])

    async def step(self, action: str) -> dict[str, Any]:
        out = await self.sandbox.arun(f"cd /app && python client.py step '{action}' --json", session="default")
        return dict(json.loads(out.output.strip()))

    async def close(self) -> None:
        await self.sandbox.stop()
