"""Every shipped way to start the gateway, in front of an https backend.

An https backend fails only where ssl was imported before gevent patched
the workers, so each entry point is started as an operator would start it
(the README's run command, `python -m app`, gunicorn with the shipped
config, the systemd unit's ExecStart line as written) against a TLS fake
backend whose certificate is trusted through `BACKEND_CA_BUNDLE`. Each must
complete a JSON response and a stream, and log neither gevent's
MonkeyPatchWarning nor a RecursionError. (The Docker image's entry point:
tests/e2e/test_docker.py.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import openai
import pytest

from tests.conftest import TEST_KEY
from tests.e2e.gateway_process import GUNICORN
from tests.e2e.test_systemd import INSTALL_DIR, runtime_environment, service
from tests.integration.helpers import create, stream
from tests.tls import assert_clean_start

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# The gateway's own test settings (port, store, metrics, backend) win over the unit's.
SET_BY_THE_TEST = {"HOST_PORT", "SESSION_STORE_DSN", "PROMETHEUS_MULTIPROC_DIR"}


def systemd_execstart() -> list[str]:
    """The unit's ExecStart, with the install directory pointing at this checkout."""
    return service()["ExecStart"].replace(INSTALL_DIR, str(ROOT)).split()


def systemd_environment() -> dict[str, str]:
    environ = runtime_environment()
    return {name: value for name, value in environ.items() if name not in SET_BY_THE_TEST}


ENTRY_POINTS = {
    "scripts/run": (lambda: ["./scripts/run"], dict),
    "python -m app": (lambda: [sys.executable, "-m", "app"], dict),
    "gunicorn": (lambda: GUNICORN, dict),
    "systemd ExecStart": (systemd_execstart, systemd_environment),
}


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_entry_point_serves_an_https_backend(entry_point, start_gateway, https_backend):
    server, cert = https_backend
    command, environment = ENTRY_POINTS[entry_point]
    env = {**environment(), "OPENAI_API_ENDPOINT": server.base_url}
    gateway = start_gateway(
        command=command(), model_server=server, BACKEND_CA_BUNDLE=str(cert), **env
    )
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=TEST_KEY, max_retries=0)
    assert create(sdk, input="Hi").response.status == "completed"
    assert stream(sdk, input="Hi").response.status == "completed"
    assert len(server.chat_requests()) == 2
    assert_clean_start(gateway.log_text())
