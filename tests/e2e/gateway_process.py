"""The gateway as a real process: `gunicorn -c gunicorn.conf.py wsgi:app` from the checkout.

Any other entry point (`./scripts/run`, the systemd unit's `ExecStart`) can
be started the same way by passing its command.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fakebackend import FakeBackend
from tests.processes import terminate

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gateway:
    """The gateway started from the checkout: gunicorn, or `command` with the same settings."""

    def __init__(
        self,
        tmp_path: Path,
        backend: FakeBackend,
        workers: int,
        env: dict[str, str],
        command: list[str] | None = None,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"gunicorn-{self.port}.log"
        self.env = {
            **os.environ,
            "OPENAI_API_ENDPOINT": backend.base_url,
            "SESSION_STORE_DSN": str(tmp_path / "gateway.db"),
            "FILE_STORE_BASE_DIR": str(tmp_path / "files"),
            "HOST_PORT": f"127.0.0.1:{self.port}",
            "GATEWAY_WORKERS": str(workers),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "LOG_LEVEL": "info",
            **env,
        }
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command or GUNICORN, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited early:\n{self.log_text()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise AssertionError(f"gunicorn did not serve in time:\n{self.log_text()}")

    def wait_for_exit(self, timeout: float = START_TIMEOUT) -> int:
        return self.process.wait(timeout=timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        terminate(self.process, timeout=15)


@pytest.fixture
def start_gateway(tmp_path: Path, backend: FakeBackend) -> Iterator[Any]:
    started: list[Gateway] = []

    def start(
        workers: int = 2,
        wait: bool = True,
        command: list[str] | None = None,
        model_server: FakeBackend | None = None,
        **env: str,
    ) -> Gateway:
        gateway = Gateway(tmp_path, model_server or backend, workers, env, command)
        started.append(gateway)
        if wait:
            gateway.wait_until_serving()
        return gateway

    yield start
    for gateway in started:
        gateway.stop()
