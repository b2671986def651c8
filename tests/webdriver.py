"""A small W3C WebDriver client for Debian's chromedriver and headless Chromium.

Just what the dashboard's test does: open a page, find elements, type,
click, read text, wait for a condition, read the browser's console (CSP
violations land there) and save a screenshot. It speaks the WebDriver
HTTP protocol with requests, so no browser-automation package is needed.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.e2e.gateway_process import free_port
from tests.processes import terminate

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM = "/usr/bin/chromium"


def available() -> str | None:
    """Why the browser test cannot run here (None: it can)."""
    if not Path(CHROMIUM).exists():
        return "Debian's chromium is not installed (scripts/install-test-tools)"
    if shutil.which("chromedriver") is None:
        return "chromedriver is not installed (scripts/install-test-tools)"
    return None


class Browser:
    def __init__(self, base: str, session: str) -> None:
        self.base = f"{base}/session/{session}"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, self.base + path, json=body, timeout=60)
        answer = response.json()
        if response.status_code >= 400:
            raise AssertionError(f"webdriver {method} {path}: {answer['value']}")
        return answer["value"]

    def open(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        return self._call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type(self, css: str, text: str) -> None:
        self._call("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css: str) -> None:
        self._call("POST", f"/element/{self.find(css)}/click", {})

    def text(self, css: str) -> str:
        return self._call("GET", f"/element/{self.find(css)}/text")

    def run(self, script: str, *args: Any) -> Any:
        return self._call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def console(self) -> list[dict]:
        return self._call("POST", "/se/log", {"type": "browser"})

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))
        return path

    def wait_for(self, check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = check()
            except AssertionError:
                found = None
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)


@contextmanager
def chromium(log_path: Path) -> Iterator[Browser]:
    """Headless Chromium through chromedriver on a loopback port."""
    port = free_port()
    with log_path.open("wb") as log:
        driver = subprocess.Popen(
            ["chromedriver", f"--port={port}", "--allowed-ips=127.0.0.1"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"{base}/status", timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or driver.poll() is not None:
                    raise AssertionError(
                        f"chromedriver did not start:\n{log_path.read_text()}"
                    ) from None
                time.sleep(0.1)
        options = {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
            ],
        }
        capabilities = {
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "goog:loggingPrefs": {"browser": "ALL"},
        }
        created = requests.post(
            f"{base}/session", json={"capabilities": {"alwaysMatch": capabilities}}, timeout=60
        ).json()
        session = created["value"].get("sessionId")
        if session is None:
            raise AssertionError(f"no browser session: {created['value']}")
        try:
            yield Browser(base, session)
        finally:
            requests.delete(f"{base}/session/{session}", timeout=30)
    finally:
        terminate(driver, timeout=10)
