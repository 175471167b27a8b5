"""``GET /dashboard`` in a real headless Chromium against a real server, real sandboxes and a real GEM env.

Set ``ROCK_ENVS_DASHBOARD_SHOTS=docs`` to write the README's screenshots (one per page) there.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Iterator

import httpx
import numpy as np
import pytest

import rock_envs
from tests.support import browser as support
from tests.support.paths import PYTHON
from tests.support.processes import worker_pids
from tests.support.server import ServerProcess, free_port

SHOTS = os.environ.get("ROCK_ENVS_DASHBOARD_SHOTS")
SOKOBAN = "game:Sokoban-v0-easy"
AGENT = """
import openai
client = openai.OpenAI(max_retries=0)
r = client.chat.completions.create(model="policy", messages=[{"role": "user", "content": "Which way? Answer in \\\\boxed{}."}])
print(r.choices[0].message.content)
"""


@pytest.fixture
def browser() -> Iterator[support.Browser]:
    problem = support.browser_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"headless Chromium is needed under CI: {problem}")
        support.SKIPPED.add(problem)
        pytest.skip(problem)
    b = support.Browser()
    yield b
    b.close()


@pytest.fixture
def srv() -> Iterator[ServerProcess]:
    server = ServerProcess().start()
    yield server
    server.stop()


def shot(b: support.Browser, name: str, tmp: str) -> None:
    b.screenshot(os.path.join(SHOTS or tmp, f"dashboard-{name}.png"))


ON_PAGE = "return document.querySelector('main').innerText.includes(arguments[0]);"
WORKERS = "const e = document.getElementById('workers'); return e && e.innerText === arguments[0];"
OFF_PAGE = "return !document.querySelector('main').innerText.includes(arguments[0]);"


def test_the_dashboard_refuses_without_the_token_then_follows_the_server_live(
    browser: support.Browser, srv: ServerProcess, tmp_path: object
) -> None:
    tmp = str(tmp_path)
    with httpx.Client(base_url=srv.url, timeout=120) as anon:
        assert anon.get("/dashboard").status_code == 200  # the page holds no data
        for path in ("/dashboard/api/overview", "/dashboard/api/sandboxes", "/dashboard/api/envs"):
            assert anon.get(path).status_code == 401, path
    client = httpx.Client(base_url=srv.url, headers=srv.headers, timeout=120)
    first = client.post("/sandboxes", json={"ttl": 600}).json()["id"]
    assert client.post(f"/sandboxes/{first}/commands", json={"cmd": "echo hi"}).json()["exit_code"] == 0
    client.post(f"/sandboxes/{first}/commands", json={"cmd": "exit 3"})

    browser.open(srv.url + "/dashboard#sandboxes")
    browser.wait_for("return !document.getElementById('login').hidden;")
    assert first not in browser.text("body")
    browser.type("#token", "not-the-token")
    browser.click("#login-button")
    browser.wait_for("return document.getElementById('login-error').innerText.includes('refused');")
    assert first not in browser.text("body")
    assert browser.js("return localStorage.getItem('rock-envs-token');") is None  # a refused token is dropped
    browser.console_errors()  # the 401 itself is logged by the browser: drop it

    browser.type("#token", srv.token)
    browser.click("#login-button")
    browser.wait_for(ON_PAGE, first)
    assert srv.token not in browser.js("return location.href;")
    shot(browser, "sandboxes", tmp)

    second = client.post("/sandboxes", json={"ttl": 600}).json()["id"]
    browser.wait_for(ON_PAGE, second)  # it updates by itself
    client.delete(f"/sandboxes/{second}")
    browser.wait_for(OFF_PAGE, second)

    job = client.post(
        f"/sandboxes/{first}/jobs", json={"cmd": "for i in 1 2 3; do echo line$i; sleep 0.3; done; sleep 600"}
    ).json()["job_id"]
    browser.click(f'tr[data-sandbox="{first}"]')
    browser.wait_for(ON_PAGE, "Processes")
    browser.wait_for(ON_PAGE, job)
    browser.click(f'a[data-job="{job}"]')
    browser.wait_for("const e = document.getElementById('job-log'); return e && e.innerText.includes('line3');")
    commands = browser.text("main")
    assert "echo hi" in commands and "exit 3" in commands
    assert browser.js("return document.querySelectorAll('td .error').length;") >= 1  # exit 3 shows as an error
    shot(browser, "sandbox", tmp)

    gem = client.post("/apis/v1/envs/gem/make", json={"env_id": SOKOBAN}).json()["sandbox_id"]
    board = client.post("/apis/v1/envs/gem/reset", json={"sandbox_id": gem, "seed": 3}).json()["info"]["suffix"]
    browser.open(srv.url + "/dashboard#envs")  # the token is still in the browser: no prompt
    browser.wait_for("return document.querySelector('pre.board');")
    shown = browser.text("pre.board")
    assert "#" in shown and shown.split() == board.split()  # the board as the env has it now
    after = client.post("/apis/v1/envs/gem/step", json={"sandbox_id": gem, "action": "\\boxed{up}"}).json()
    browser.wait_for(ON_PAGE, "step 1")
    assert browser.text("pre.board").split() == after["info"]["suffix"].split()
    assert after["observation"].split() == browser.text("pre.obs").split()
    shot(browser, "env", tmp)

    browser.open(srv.url + "/dashboard#overview")
    browser.wait_for(
        "return document.getElementById('running') && document.getElementById('running').innerText === '2';"
    )
    shot(browser, "overview", tmp)
    assert browser.console_errors() == []
    client.post("/apis/v1/envs/gem/close", json={"sandbox_id": gem})
    client.delete(f"/sandboxes/{first}")
    client.close()


def test_the_model_and_worker_pages_show_calls_and_workers(
    browser: support.Browser, srv: ServerProcess, tmp_path: object
) -> None:
    client = httpx.Client(base_url=srv.url, headers=srv.headers, timeout=120)
    sid = client.post("/sandboxes", json={"ttl": 600, "model_service": "trainer"}).json()["id"]
    client.put(f"/sandboxes/{sid}/files/content", params={"path": "agent.py"}, content=AGENT.encode())
    client.post(f"/sandboxes/{sid}/jobs", json={"cmd": f"{PYTHON} agent.py"})
    calls = client.post("/model/calls/next", json={"sandbox_id": sid, "timeout": 60}).json()["calls"]
    client.post(f"/model/calls/{calls[0]['call_id']}/respond", json={"response": "\\boxed{up}"})
    browser.open(srv.url + "/dashboard")
    browser.type("#token", srv.token)
    browser.click("#login-button")
    browser.open(srv.url + "/dashboard#model")
    browser.wait_for(ON_PAGE, "\\boxed{up}")
    assert "Which way?" in browser.text("main")
    shot(browser, "model", str(tmp_path))

    venv = rock_envs.make_vec("CartPole-v1", 4, backend="remote", url=srv.url, token=srv.token, num_workers=2)
    try:
        venv.reset(seed=0)
        for _ in range(20):
            venv.step(venv.action_space.sample())
        browser.open(srv.url + "/dashboard#workers")
        browser.wait_for(WORKERS, "2")
        assert browser.js("return document.querySelectorAll('main tbody tr').length;") == 2
        shot(browser, "workers", str(tmp_path))
    finally:
        venv.close()
    browser.wait_for(WORKERS, "0")
    assert browser.console_errors() == []
    client.delete(f"/sandboxes/{sid}")
    client.close()


FRAME_SUM = """
const img = document.querySelector(`img[data-worker-frame="${arguments[0]}"]`);
if (!img || !img.complete || !img.naturalWidth) return null;
const canvas = document.createElement('canvas');
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
const ctx = canvas.getContext('2d');
ctx.drawImage(img, 0, 0);
const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
let sum = 0;
for (let k = 0; k < px.length; k++) if (k % 4 !== 3) sum += px[k];
return [canvas.width, canvas.height, sum];
"""
RESTARTS = "const e = document.querySelector(`[data-restarts]`); return e && e.innerText === arguments[0];"


def test_the_live_view_shows_a_remote_workers_frame_and_the_workers_page_its_restarts(
    browser: support.Browser, srv: ServerProcess, tmp_path: object
) -> None:
    venv = rock_envs.make_vec(
        "CartPole-v1", 2, backend="remote", url=srv.url, token=srv.token, num_workers=1, render_mode="rgb_array"
    )
    try:
        venv.reset(seed=0)
        browser.open(srv.url + "/dashboard")
        browser.type("#token", srv.token)
        browser.click("#login-button")
        browser.open(srv.url + "/dashboard#envs")
        browser.wait_for(ON_PAGE, "no frame yet")  # nobody had asked for one: the worker drew none
        (key,) = [
            c["key"] for c in httpx.get(srv.url + "/dashboard/api/workers", headers=srv.headers).json()["channels"]
        ]
        deadline = time.monotonic() + 60
        while browser.js(FRAME_SUM, key) is None:  # the page asks; the worker draws after its next step
            assert time.monotonic() < deadline, "no frame reached the page"
            venv.step(np.zeros(2, dtype=np.int64))
            time.sleep(0.1)
        time.sleep(0.6)  # past the worker's next look at the page's ask: the step below draws a frame
        venv.step(np.ones(2, dtype=np.int64))
        expected = venv.call("render")[0]  # env 0 as it is now: what that frame shows
        height, width = expected.shape[:2]
        want = [width, height, int(expected.astype(np.int64).sum())]
        browser.wait_for(f"const s = (() => {{{FRAME_SUM}}})(); return s && s[2] === {want[2]} && s;", key)
        assert browser.js(FRAME_SUM, key) == want
        shot(browser, "frame", str(tmp_path))

        browser.open(srv.url + "/dashboard#workers")
        browser.wait_for(RESTARTS, "0")
        (sid,) = venv.group.sandbox_ids()
        (pid,) = worker_pids(srv.runtime_dir, sid)
        os.kill(pid, signal.SIGKILL)  # a real worker process, killed by a real signal
        infos = venv.step(np.zeros(2, dtype=np.int64))[4]
        assert infos["_worker_restarted"].tolist() == [True, True]
        browser.wait_for(RESTARTS, "1")
        assert browser.text("#restarts") == "1"
        metrics = httpx.get(srv.url + "/metrics", headers=srv.headers).text
        assert "rock_envs_remote_worker_restarts_total 1.0" in metrics
        assert browser.console_errors() == []
    finally:
        venv.close()
    with httpx.Client(base_url=srv.url, headers=srv.headers) as client:
        assert client.get("/dashboard/api/workers/w999/frame").status_code == 404  # never opened
        assert client.get(f"/dashboard/api/workers/{key}/frame").status_code == 204  # closed


def test_rock_envs_dashboard_prints_the_page_or_says_no_server_answers(srv: ServerProcess) -> None:
    from typer.testing import CliRunner

    from rock_envs.cli import app

    runner = CliRunner()
    found = runner.invoke(app, ["dashboard", "--url", srv.url, "--no-open"])
    assert found.exit_code == 0, found.output
    assert found.output.split()[0] == srv.url + "/dashboard" and srv.token not in found.output
    missing = runner.invoke(app, ["dashboard", "--url", f"http://127.0.0.1:{free_port()}", "--no-open"])
    assert missing.exit_code == 2 and "no rock-envs server answers" in missing.output


@pytest.mark.anyio
async def test_an_embedded_manager_gets_its_dashboard_and_outlives_it(embedded_dir: str) -> None:
    from rock_envs.sandbox import Sandbox, SandboxConfig
    from rock_envs.sandbox.server import serve_dashboard

    async with Sandbox(SandboxConfig(runtime_dir=embedded_dir)) as sb:
        board = await serve_dashboard(embedded_dir)
        base = board.url.rsplit("/dashboard", 1)[0]
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            assert (await client.get("/dashboard")).status_code == 200
            assert (await client.get("/dashboard/api/sandboxes")).status_code == 401
            listed = await client.get("/dashboard/api/sandboxes", headers={"Authorization": f"Bearer {board.token}"})
            assert [row["id"] for row in listed.json()["sandboxes"]] == [sb.id]
        await board.aclose()
        await board.aclose()  # twice is fine
        assert (await sb.arun("echo still here")).output == "still here\n"  # the manager was not closed
