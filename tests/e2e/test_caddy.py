"""The shipped Caddyfile (caddy/Caddyfile) with Debian's Caddy, in front of real gunicorn.

`caddy validate` and `caddy adapt` read the file as shipped: it is valid and
formatted; its defaults (localhost, Caddy's internal CA, ports 443 and 80,
the compose service gateway:8080) and its environment placeholders
(CADDY_DOMAIN, CADDY_TLS, CADDY_PORT, CADDY_HTTP_PORT, CADDY_UPSTREAM,
CADDY_ADMIN) come out as meant; its timeouts, body limit and streaming
settings agree with the gateway's.

For the proxy tests Caddy runs the shipped file in the foreground (`caddy
run`), its state under a temporary directory, with one rewrite of addresses
(`default_bind 127.0.0.1`: Caddy listens on every interface by default). The
environment names loopback ports and the gunicorn upstream; TLS is the
shipped default, Caddy's internal CA, whose root the client trusts.

Shown through Caddy: a stream's first delta arrives while the backend is
still sending; the openai SDK works (JSON, stream, previous_response_id) and
its key reaches the backend; a body over 10 MiB is refused by Caddy in the
OpenAI error shape, with a Content-Length (the gateway never sees it) or
chunked (the backend never sees it); the stream headers survive,
uncompressed; plain HTTP redirects to HTTPS; a WebSocket attempt gets the
gateway's clean 404.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from app.config import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_FILE_BYTES, DEFAULT_READ_TIMEOUT
from tests import fakebackend as fb
from tests.conftest import TEST_KEY
from tests.e2e import proxied
from tests.e2e.gateway_process import Gateway
from tests.e2e.test_nginx import running, wait_for
from tests.e2e.test_systemd import gunicorn_settings
from tests.integration.helpers import (
    MODEL,
    assert_openai_error,
    closed_port,
)

try:  # openai 3.x ships its transport as httpx2
    import httpx2 as httpx
except ImportError:  # pragma: no cover - openai 1.x/2.x
    import httpx

ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "caddy" / "Caddyfile"
CADDY = shutil.which("caddy")
COMMAND_TIMEOUT = 30.0
START_TIMEOUT = 30.0
OVERSIZED_BODY = 11 * 1024 * 1024
# An upload may carry a whole file and the form around it (one MiB more).
UPLOAD_LIMIT = DEFAULT_MAX_FILE_BYTES + 1024 * 1024
# Caddy's internal CA root, under XDG_DATA_HOME (/data in the container).
INTERNAL_ROOT = "caddy/pki/authorities/local/root.crt"
SECOND = 1_000_000_000  # Caddy's JSON counts durations in nanoseconds

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CADDY is None, reason="caddy is not installed (scripts/install-test-tools installs it)"
    ),
]


def caddy_environ(home: Path, **settings: str) -> dict[str, str]:
    """An environment holding only `settings`, Caddy's state and autosaved config under `home`."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        **settings,
    }


def caddy(home: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run `caddy ARGS` on the shipped Caddyfile with `settings` as its environment."""
    command = [CADDY, *args, "--config", str(CADDYFILE), "--adapter", "caddyfile"]
    completed = subprocess.run(
        command,
        env=caddy_environ(home, **settings),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert completed.returncode == 0, f"caddy {args[0]} refused the Caddyfile:\n{completed.stderr}"
    return completed


def adapted(home: Path, **settings: str) -> dict[str, Any]:
    """The shipped Caddyfile as Caddy's JSON config, under `settings`."""
    return json.loads(caddy(home, "adapt", **settings).stdout)


def handlers(config: Any, name: str) -> list[dict[str, Any]]:
    """Every handler called `name`, anywhere in a JSON config."""
    if isinstance(config, list):
        return [found for item in config for found in handlers(item, name)]
    if not isinstance(config, dict):
        return []
    found = [config] if config.get("handler") == name else []
    return found + [match for value in config.values() for match in handlers(value, name)]


def tls_policy(config: dict[str, Any]) -> dict[str, Any]:
    (policy,) = config["apps"]["tls"]["automation"]["policies"]
    return policy


def site(config: dict[str, Any]) -> dict[str, Any]:
    """The one HTTPS server (Caddy adds the HTTP redirects when it starts)."""
    (server,) = config["apps"]["http"]["servers"].values()
    return server


def site_hosts(config: dict[str, Any]) -> list[str]:
    routes = site(config)["routes"]
    return [host for route in routes for match in route["match"] for host in match["host"]]


def site_listen(config: dict[str, Any]) -> list[str]:
    return site(config)["listen"]


def bound_to_loopback(caddyfile: str) -> str:
    """The Caddyfile with every listener on 127.0.0.1 (a global `default_bind`)."""
    result, count = re.subn(
        r"^(\s*)(http_port )", r"\1default_bind 127.0.0.1\n\1\2", caddyfile, flags=re.MULTILINE
    )
    assert count == 1, "the Caddyfile's global options no longer set http_port; update the test"
    return result


def test_shipped_caddyfile_is_valid_and_formatted(tmp_path):
    checked = caddy(tmp_path, "validate")
    assert "Valid configuration" in checked.stdout + checked.stderr
    # Caddy warns at every start about a file `caddy fmt` would change.
    assert "not formatted" not in checked.stderr, checked.stderr


def test_defaults_serve_localhost_with_the_internal_ca_in_front_of_the_compose_service(tmp_path):
    config = adapted(tmp_path)
    assert config["admin"]["listen"] == "localhost:2019"
    assert site_listen(config) == [":443"]
    assert config["apps"]["http"]["http_port"] == 80
    assert site_hosts(config) == ["localhost"]
    assert tls_policy(config)["issuers"] == [{"module": "internal"}]
    # Installing its root into this machine's trust store would change the host.
    assert config["apps"]["pki"]["certificate_authorities"]["local"]["install_trust"] is False
    (proxy,) = handlers(config, "reverse_proxy")
    assert proxy["upstreams"] == [{"dial": "gateway:8080"}]


def test_environment_names_the_domain_acme_email_ports_upstream_and_admin(tmp_path):
    config = adapted(
        tmp_path,
        CADDY_DOMAIN="gateway.example.com",
        CADDY_TLS="ops@example.com",
        CADDY_PORT="8443",
        CADDY_HTTP_PORT="8081",
        CADDY_UPSTREAM="127.0.0.1:8080",
        CADDY_ADMIN="127.0.0.1:2020",
    )
    assert config["admin"]["listen"] == "127.0.0.1:2020"
    assert site_listen(config) == [":8443"]
    assert config["apps"]["http"]["http_port"] == 8081
    assert site_hosts(config) == ["gateway.example.com"]
    policy = tls_policy(config)
    assert policy["subjects"] == ["gateway.example.com"]
    assert {issuer["module"] for issuer in policy["issuers"]} >= {"acme"}
    assert all(issuer["email"] == "ops@example.com" for issuer in policy["issuers"])
    (proxy,) = handlers(config, "reverse_proxy")
    assert proxy["upstreams"] == [{"dial": "127.0.0.1:8080"}]


def test_proxy_streams_unbuffered_and_outwaits_the_backend_and_gunicorn_keepalive(tmp_path):
    config = adapted(tmp_path)
    (proxy,) = handlers(config, "reverse_proxy")
    assert proxy["flush_interval"] == -1
    transport = proxy["transport"]
    for name in ("read_timeout", "write_timeout"):
        assert transport[name] > DEFAULT_READ_TIMEOUT * SECOND, f"{name} {transport[name]}"
    # Idle upstream connections close before gunicorn closes them (no POST on a closing one).
    keepalive = gunicorn_settings({})["keepalive"]
    assert 0 < transport["keep_alive"]["idle_timeout"] < keepalive * SECOND
    assert handlers(config, "encode") == [], "compression would hold stream events back"


def test_bodies_are_limited_like_the_gateway(tmp_path):
    config = adapted(tmp_path)
    limits = sorted(limit["max_size"] for limit in handlers(config, "request_body"))
    assert limits == [DEFAULT_MAX_BODY_BYTES, UPLOAD_LIMIT]
    assert [refusal["status_code"] for refusal in handlers(config, "error")] == [413, 413]
    routes = json.dumps(config["apps"]["http"]["servers"])
    for limit in limits:
        assert f"Content-Length}}) > {limit}" in routes


@dataclass
class Stack:
    """Caddy (redirect + proxy) in front of gunicorn."""

    base_url: str
    redirect_url: str
    verify: ssl.SSLContext
    gateway: Gateway

    def http(self) -> httpx.Client:
        return httpx.Client(verify=self.verify, trust_env=False, timeout=30.0)

    def sdk(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base_url, api_key=TEST_KEY, http_client=self.http(), max_retries=0
        )


def wait_for_file(path: Path, process: subprocess.Popen, log: Path) -> Path:
    deadline = time.monotonic() + START_TIMEOUT
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"caddy never wrote {path.name}:\n{log.read_text()}")
        time.sleep(0.1)
    return path


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, backend_server: fb.FakeBackend
) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("caddy")
    gateway = Gateway(
        home, backend_server, workers=2, env={"GATEWAY_MAX_FILE_BYTES": str(proxied.FILE_CAP)}
    )
    try:
        gateway.wait_until_serving()
        ports = {name: closed_port() for name in ("https", "http", "admin")}
        config = home / "Caddyfile"
        config.write_text(bound_to_loopback(CADDYFILE.read_text()))
        environ = caddy_environ(
            home,
            CADDY_DOMAIN="127.0.0.1",
            CADDY_PORT=str(ports["https"]),
            CADDY_HTTP_PORT=str(ports["http"]),
            CADDY_ADMIN=f"127.0.0.1:{ports['admin']}",
            CADDY_UPSTREAM=f"127.0.0.1:{gateway.port}",
        )
        log = home / "caddy.log"
        command = [CADDY, "run", "--config", str(config), "--adapter", "caddyfile"]
        with running(command, log, env=environ) as proxy:
            root = wait_for_file(home / "data" / INTERNAL_ROOT, proxy, log)
            verify = ssl.create_default_context(cafile=str(root))
            base = f"https://127.0.0.1:{ports['https']}"
            wait_for(f"{base}/health", verify, proxy, log)
            yield Stack(f"{base}/v1", f"http://127.0.0.1:{ports['http']}", verify, gateway)
    finally:
        gateway.stop()


@pytest.fixture
def sdk_via_caddy(stack: Stack) -> Iterator[openai.OpenAI]:
    with stack.sdk() as client:
        yield client


def test_first_delta_arrives_before_the_backend_finishes(backend, sdk_via_caddy):
    proxied.first_delta_arrives_before_the_backend_finishes(backend, sdk_via_caddy)


def test_sdk_works_through_caddy_json_stream_and_previous_response(backend, sdk_via_caddy):
    proxied.sdk_works_json_stream_and_previous_response(backend, sdk_via_caddy)


def caddy_body(matcher: str) -> dict[str, Any]:
    """The body the Caddyfile's handle_errors block answers `@matcher` with."""
    found = re.search(rf"respond @{matcher} `(.*)` 413", CADDYFILE.read_text())
    return json.loads(found.group(1))


def test_oversized_body_with_a_length_is_refused_by_caddy_in_openai_shape(
    stack, backend, sdk_via_caddy
):
    marker = f"oversized-{os.urandom(4).hex()}"
    with pytest.raises(openai.APIStatusError) as caught:
        sdk_via_caddy.responses.create(
            model=MODEL, input="a" * OVERSIZED_BODY, extra_query={"marker": marker}
        )
    assert_openai_error(caught.value, 413)
    # Caddy's own body, word for word: the gateway (whose 413 reads differently) never saw it.
    assert caught.value.response.json() == caddy_body("body_too_large")
    assert backend.chat_requests() == []
    # The access log names each request line with its query. Another test's request (a chunked
    # body the gateway refuses after Caddy has answered) may still be logging: look for this
    # request's marker only, once a later request has been logged.
    assert marker not in logged_after_a_later_request(stack)


def logged_after_a_later_request(stack: Stack) -> str:
    """The gateway's log once a request sent now through Caddy has been written to it."""
    later = f"later-{os.urandom(4).hex()}"
    with stack.http() as client:
        assert client.get(f"{stack.base_url.removesuffix('/v1')}/health?{later}").status_code == 200
    deadline = time.monotonic() + 10
    while later not in (text := stack.gateway.log_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert later in text, "the gateway never logged the later request"
    return text


def test_oversized_chunked_body_is_cut_off_by_caddy(stack, backend):
    def body() -> Iterator[bytes]:
        yield b'{"model": "fake-model", "input": "'
        for _ in range(OVERSIZED_BODY // 2**20):
            yield b"a" * 2**20
        yield b'"}'

    with stack.http() as client:
        answer = client.post(
            f"{stack.base_url}/responses",
            headers={"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"},
            content=body(),
        )
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert answer.status_code == 413
    assert answer.json() == caddy_body("body_too_large")
    assert backend.chat_requests() == []


def test_uploads_pass_the_body_limit_up_to_the_gateways_file_cap(stack, sdk_via_caddy):
    proxied.uploads_pass_the_body_limit_up_to_the_file_cap(sdk_via_caddy)


def test_an_upload_declared_past_caddys_limit_is_refused_at_once(stack, backend):
    assert proxied.upload_declared_past_the_proxy_limit_is_refused_at_once(stack) == caddy_body(
        "file_too_large"
    )


def test_stream_headers_survive_caddy_uncompressed(stack, backend):
    proxied.stream_headers_survive_uncompressed(stack)


def test_plain_http_redirects_to_https(stack):
    with stack.http() as client:
        answer = client.get(f"{stack.redirect_url}/v1/models")
    assert answer.status_code in (301, 308)
    https_port = stack.base_url.rsplit(":", 1)[1].split("/")[0]
    assert answer.headers["location"] == f"https://127.0.0.1:{https_port}/v1/models"


def test_websocket_attempt_gets_the_gateways_clean_404(stack, backend):
    proxied.websocket_attempt_gets_the_gateways_clean_404(stack, backend)


def test_admin_sign_in_headers_from_clients_never_reach_the_gateway(stack):
    proxied.sign_in_headers_never_reach_the_gateway(stack)
