"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``), driven over the W3C WebDriver
protocol with httpx: chromedriver on 127.0.0.1, no selenium needed.

``./run test`` installs both packages before the suite (``scripts/chromium.sh``), where apt-get can;
where they are still missing, :func:`browser_problem` says why and the tests skip with one loud
line, or fail when ``CI`` is set.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

import httpx

from tests.support.server import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SKIPPED: set[str] = set()
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1366,900",
]


def browser_problem() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing: `apt-get install -y {package}` (./run test does it where apt-get can)"
    return None


class Browser:
    """One Chromium session: `open`, `find`, `type`, `click`, `js`, `screenshot`, `console_errors`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="rock-envs-chromium-")
        self.driver = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}", "--allowed-ips=127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        self._wait_for_driver()
        options = {"binary": CHROMIUM, "args": [*FLAGS, f"--user-data-dir={self.profile}"]}
        caps = {"browserName": "chrome", "goog:chromeOptions": options, "goog:loggingPrefs": {"browser": "ALL"}}
        reply = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
        self.session = reply["sessionId"]

    def _wait_for_driver(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.http.get("/status").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("chromedriver did not answer on 127.0.0.1 within 30 s")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, path, json=body)
        value = response.json().get("value")
        if response.status_code != 200:
            raise RuntimeError(f"WebDriver {method} {path}: {response.status_code} {value}")
        return value

    def _s(self, path: str) -> str:
        return f"/session/{self.session}{path}"

    def open(self, url: str) -> None:
        self._call("POST", self._s("/url"), {"url": url})

    def find(self, css: str) -> str:
        return str(self._call("POST", self._s("/element"), {"using": "css selector", "value": css})[ELEMENT])

    def type(self, css: str, text: str) -> None:
        self._call("POST", self._s(f"/element/{self.find(css)}/value"), {"text": text})

    def click(self, css: str) -> None:
        self._call("POST", self._s(f"/element/{self.find(css)}/click"), {})

    def js(self, script: str, *args: Any) -> Any:
        return self._call("POST", self._s("/execute/sync"), {"script": script, "args": list(args)})

    def text(self, css: str) -> str:
        return str(self.js("const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", css))

    def wait_for(self, script: str, *args: Any, timeout: float = 30.0) -> Any:
        """Poll `script` (a JS function body returning a value) until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(script, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never satisfied: {script} (last: {value!r})")
            time.sleep(0.1)

    def screenshot(self, path: str) -> None:
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(self._call("GET", self._s("/screenshot"))))

    def console_errors(self) -> list[str]:
        """The page's console messages at SEVERE since the last call (errors and uncaught exceptions)."""
        entries = self._call("POST", self._s("/se/log"), {"type": "browser"})
        return [e["message"] for e in entries if e.get("level") == "SEVERE"]

    def close(self) -> None:
        try:
            self._call("DELETE", self._s(""))
        finally:
            self.http.close()
            self.driver.terminate()
            self.driver.wait(timeout=30)
            shutil.rmtree(self.profile, ignore_errors=True)
