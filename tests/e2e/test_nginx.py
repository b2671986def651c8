"""The shipped nginx site (nginx/responses-gateway.conf) in front of real gunicorn.

The site is used as shipped except for addresses: its listen ports and the
upstream address are rewritten to free loopback ports, its log paths to a
temporary directory and its placeholder certificate to a throwaway
self-signed one made with `openssl req` (without openssl the TLS server is
served as plain HTTP, the only change). nginx runs in the foreground under
its own prefix; the gateway runs under gunicorn against the fake backend.

Shown through nginx: a stream's first delta arrives while the backend is
still sending; the openai SDK works (JSON, stream, previous_response_id) and
its key reaches the backend but not nginx's access log; an 11 MB body is
refused by nginx with 413 in the OpenAI error shape, the gateway never
seeing it; the stream headers survive; plain HTTP redirects to HTTPS; a
WebSocket attempt gets the gateway's clean 404.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from app.config import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_FILE_BYTES, DEFAULT_READ_TIMEOUT
from tests import fakebackend as fb
from tests.conftest import TEST_KEY
from tests.e2e import proxied
from tests.integration.helpers import (
    MODEL,
    assert_openai_error,
    closed_port,
    create,
)
from tests.processes import terminate
from tests.tls import self_signed_certificate

try:  # openai 3.x ships its transport as httpx2
    import httpx2 as httpx
except ImportError:  # pragma: no cover - openai 1.x/2.x
    import httpx

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "nginx" / "responses-gateway.conf"
DEBIAN_NGINX = "/usr/sbin/nginx"  # not on a non-root user's PATH
NGINX = shutil.which("nginx") or (DEBIAN_NGINX if os.access(DEBIAN_NGINX, os.X_OK) else None)
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
OVERSIZED_BODY = 11 * 1024 * 1024

pytestmark = pytest.mark.slow


@dataclass
class Stack:
    """nginx (HTTP redirect + proxy server) in front of gunicorn, and where each logs."""

    base_url: str  # the proxying server's /v1 URL (https when openssl made a certificate)
    redirect_url: str  # the plain-HTTP server that redirects
    verify: ssl.SSLContext | bool
    nginx_access_log: Path
    store: Path

    def http(self) -> httpx.Client:
        return httpx.Client(verify=self.verify, trust_env=False, timeout=30.0)

    def sdk(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base_url, api_key=TEST_KEY, http_client=self.http(), max_retries=0
        )

    def access_log_lines(self) -> list[str]:
        if not self.nginx_access_log.exists():
            return []
        return self.nginx_access_log.read_text().splitlines()

    def stored_responses(self) -> int:
        with sqlite3.connect(f"file:{self.store}?mode=ro", uri=True) as connection:
            return connection.execute("SELECT count(*) FROM responses").fetchone()[0]


def directives() -> dict[str, list[str]]:
    """Every `name value;` directive of the shipped site: name -> values in order."""
    found: dict[str, list[str]] = {}
    for name, value in re.findall(r"^\s*(\w+)\s+([^;{]*);", SITE.read_text(), re.MULTILINE):
        found.setdefault(name, []).append(value.strip())
    return found


def shipped_refusal(location: str) -> dict:
    """The 413 body the shipped site's named `location` answers with."""
    found = re.search(rf"location @{location} \{{[^}}]*return 413 '(.*)';", SITE.read_text())
    return json.loads(found.group(1))


def size_in_bytes(value: str) -> int:
    """An nginx size such as `10m`."""
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", value.lower()).groups()
    return int(number) * 1024 ** " kmg".index(unit or " ")


def substitute(pattern: str, replacement: str, text: str) -> str:
    """Replace `pattern` (a regex, multiline) and insist it was found in the shipped file."""
    result, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert count, f"{SITE.name} no longer has {pattern!r}; update the test's rewrite"
    return result


def local_site(ports: dict[str, int], logs: Path, cert: tuple[Path, Path] | None) -> str:
    """The shipped site with loopback ports, local logs and a real (or no) certificate."""
    site = SITE.read_text()
    site = substitute(r"^\s*listen \[::\]:\d+.*\n", "", site)
    site = substitute(r"server 127\.0\.0\.1:8080;", f"server 127.0.0.1:{ports['gateway']};", site)
    site = substitute(r"listen 80;", f"listen 127.0.0.1:{ports['http']};", site)
    tls = " ssl" if cert else ""
    site = substitute(r"listen 443 ssl;", f"listen 127.0.0.1:{ports['https']}{tls};", site)
    site = substitute(r"/var/log/nginx/", f"{logs}/", site)
    if cert is None:
        return substitute(r"^\s*ssl_.*\n", "", site)
    site = substitute(r"ssl_certificate \S+;", f"ssl_certificate {cert[0]};", site)
    return substitute(r"ssl_certificate_key \S+;", f"ssl_certificate_key {cert[1]};", site)


def nginx_conf(prefix: Path, site: str) -> str:
    """A minimal nginx.conf holding `site` in its http block, all files under `prefix`."""
    compiled = subprocess.run([NGINX, "-V"], capture_output=True, text=True).stderr
    temp_paths = "\n".join(
        f"    {module}_temp_path {prefix}/temp/{module};"
        for module in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        if f"--without-http_{module}_module" not in compiled
    )
    # As root, workers must still read the temporary prefix (pytest's tmp is 0700).
    user = "user root;" if os.geteuid() == 0 else ""
    # Debian's nginx.conf turns gzip on for the whole http block; so does this
    # one, so it is the site's own `gzip off` that keeps streams uncompressed.
    return f"""{user}
worker_processes 1;
events {{ worker_connections 256; }}
http {{
{temp_paths}
    default_type application/octet-stream;
    gzip on;
    gzip_types application/json text/event-stream;
{site}
}}
"""


def wait_for(url: str, verify: ssl.SSLContext | bool, process: subprocess.Popen, log: Path) -> None:
    """Poll `url` until it answers 200; fail with `process`'s log if it dies or never answers."""
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(verify=verify, trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered 200; {process.args[0]} said:\n{log.read_text()}")


@contextmanager
def running(command: list[str], log: Path, **options) -> Iterator[subprocess.Popen]:
    """Run `command` with its output in `log`; stop it with SIGTERM (then SIGKILL)."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, **options)
    try:
        yield process
    finally:
        terminate(process, STOP_TIMEOUT)


def gunicorn(port: int, backend_url: str, workdir: Path) -> tuple[list[str], dict[str, str]]:
    """The gateway's production command and environment (local starter: no shared helper yet)."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GATEWAY_", "OPENAI_", "BACKEND_", "SESSION_STORE_"))
    }
    environ.update(
        HOST_PORT=f"127.0.0.1:{port}",
        OPENAI_API_ENDPOINT=backend_url,
        SESSION_STORE_TYPE="sqlite",
        SESSION_STORE_DSN=str(workdir / "gateway.db"),
        GATEWAY_WORKERS="2",
        GATEWAY_MAX_FILE_BYTES=str(proxied.FILE_CAP),
        FILE_STORE_BASE_DIR=str(workdir / "files"),
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "metrics"),
    )
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    return command, environ


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, backend_server: fb.FakeBackend
) -> Iterator[Stack]:
    if NGINX is None:
        pytest.skip("nginx is not installed (scripts/install-test-tools installs it)")
    prefix = tmp_path_factory.mktemp("nginx")
    for directory in ("logs", "temp"):
        (prefix / directory).mkdir()
    ports = {name: closed_port() for name in ("gateway", "http", "https")}
    cert = self_signed_certificate(prefix)
    verify = ssl.create_default_context(cafile=str(cert[0])) if cert else False
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix, local_site(ports, prefix / "logs", cert)))
    nginx = [NGINX, "-p", str(prefix), "-e", str(prefix / "logs/error.log"), "-c", str(conf)]
    nginx += ["-g", f"daemon off; pid {prefix}/nginx.pid;"]
    checked = subprocess.run([*nginx, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, f"nginx -t refused the shipped site:\n{checked.stderr}"

    command, environ = gunicorn(ports["gateway"], backend_server.base_url, prefix)
    scheme = "https" if cert else "http"
    base = f"{scheme}://127.0.0.1:{ports['https']}"
    logs = {name: prefix / f"{name}.log" for name in ("gunicorn", "nginx")}
    with (
        running(command, logs["gunicorn"], cwd=ROOT, env=environ) as gateway,
        running(nginx, logs["nginx"]) as proxy,
    ):
        wait_for(f"http://127.0.0.1:{ports['gateway']}/health", False, gateway, logs["gunicorn"])
        wait_for(f"{base}/health", verify, proxy, prefix / "logs/error.log")
        yield Stack(
            base_url=f"{base}/v1",
            redirect_url=f"http://127.0.0.1:{ports['http']}",
            verify=verify,
            nginx_access_log=prefix / "logs/responses-gateway.access.log",
            store=prefix / "gateway.db",
        )


def test_site_waits_longer_than_the_backend_and_limits_bodies_like_the_gateway():
    found = directives()
    for name in ("proxy_read_timeout", "proxy_send_timeout", "send_timeout"):
        (value,) = found[name]
        assert int(value.removesuffix("s")) > DEFAULT_READ_TIMEOUT, f"{name} {value}"
    # Every body but an upload's; an upload may carry a whole file and its form (1 MB more).
    limits = [size_in_bytes(limit) for limit in found["client_max_body_size"]]
    assert limits == [DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_FILE_BYTES + 1024 * 1024]


def test_site_streams_unbuffered_over_keepalive_connections():
    found = directives()
    for name, value in [
        ("proxy_buffering", "off"),
        ("proxy_cache", "off"),
        ("gzip", "off"),
        ("proxy_http_version", "1.1"),
    ]:
        assert found[name] == [value], f"{name} {found.get(name)}"
    assert 'Connection ""' in found["proxy_set_header"]
    assert int(found["keepalive"][0]) > 0
    assert set(found["proxy_pass"]) == {"http://responses_gateway"}
    assert found["proxy_request_buffering"] == ["off"]  # uploads go on as they arrive


@pytest.fixture
def sdk_via_nginx(stack: Stack) -> Iterator[openai.OpenAI]:
    with stack.sdk() as client:
        yield client


def test_first_delta_arrives_before_the_backend_finishes(backend, sdk_via_nginx):
    proxied.first_delta_arrives_before_the_backend_finishes(backend, sdk_via_nginx)


def test_sdk_works_through_nginx_json_stream_and_previous_response(backend, sdk_via_nginx):
    proxied.sdk_works_json_stream_and_previous_response(backend, sdk_via_nginx)


def test_key_is_not_in_nginx_access_log(stack, backend, sdk_via_nginx):
    logged_before = stack.access_log_lines()
    create(sdk_via_nginx, input="Hi")
    deadline = time.monotonic() + START_TIMEOUT
    while len(lines := stack.access_log_lines()) == len(logged_before):
        assert time.monotonic() < deadline, "nginx never logged the request"
        time.sleep(0.05)
    assert '"POST /v1/responses HTTP/1.1" 200' in lines[-1]
    logged = "\n".join(lines)
    assert TEST_KEY not in logged and TEST_KEY[6:-4] not in logged


def test_oversized_body_is_refused_by_nginx_in_openai_shape(stack, backend, sdk_via_nginx):
    stored = stack.stored_responses()
    with pytest.raises(openai.APIStatusError) as caught:
        sdk_via_nginx.responses.create(model=MODEL, input="a" * OVERSIZED_BODY)
    assert_openai_error(caught.value, 413)
    # nginx's own body, word for word: the gateway (whose 413 reads differently) never saw it.
    assert caught.value.response.json() == shipped_refusal("request_too_large")
    assert backend.chat_requests() == []
    assert stack.stored_responses() == stored


def test_uploads_pass_the_body_limit_up_to_the_gateways_file_cap(stack, sdk_via_nginx):
    proxied.uploads_pass_the_body_limit_up_to_the_file_cap(sdk_via_nginx)


def test_an_upload_declared_past_nginxs_limit_is_refused_at_once(stack, backend):
    refusal = proxied.upload_declared_past_the_proxy_limit_is_refused_at_once(stack)
    assert refusal == shipped_refusal("file_too_large")


def test_stream_headers_survive_nginx(stack, backend):
    proxied.stream_headers_survive_uncompressed(stack)


def test_plain_http_redirects_to_https(stack):
    with stack.http() as client:
        answer = client.get(f"{stack.redirect_url}/v1/models")
    assert answer.status_code == 301
    assert answer.headers["location"] == "https://127.0.0.1/v1/models"


def test_websocket_attempt_gets_the_gateways_clean_404(stack, backend):
    proxied.websocket_attempt_gets_the_gateways_clean_404(stack, backend)


def test_admin_sign_in_headers_from_clients_never_reach_the_gateway(stack):
    proxied.sign_in_headers_never_reach_the_gateway(stack)
