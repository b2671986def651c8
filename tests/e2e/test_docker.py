"""The Dockerfile and compose.yaml for real: the image built, run and stopped; compose brought up.

One private Docker engine and one image build serve the whole session
(tests/e2e/docker_engine.py: Debian's dockerd; stand-ins for python:3.11-slim
and caddy:2 when Docker Hub cannot be reached). Containers use the host's
network and loopback ports, and talk to the https fake backend on the
host's loopback, its certificate mounted and named by BACKEND_CA_BUNDLE.

Shown for the image: it becomes `healthy`; the openai SDK gets a JSON
response and a stream (previous_response_id: the store on /data works);
its log shows no sign of ssl imported before gevent patched; gunicorn and
its workers run as uid/gid 10001; `docker stop` lets an in-flight stream
finish and exits 0 with gunicorn's shutdown lines, within the stop timeout.

Shown for compose.yaml: `docker-compose config` accepts it with .env.sample;
every variable it reads is in .env.sample; Caddy's defaults match the
Caddyfile's and its Caddyfile is the shipped one; the postgres profile gives
the gateway a valid postgresql:// store; gateway + Caddy come up (postgres
not, its profile being off) and answer the SDK over Caddy's internal-CA
HTTPS; `down` leaves nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from app.config import load_settings
from tests import fakebackend as fb
from tests.conftest import TEST_KEY
from tests.e2e.docker_engine import (
    BUILD_TIMEOUT,
    DOCKER,
    DOCKER_COMPOSE,
    DOCKERD,
    DockerEngine,
    StandInUnavailable,
    ensure_image,
    run_client,
    stand_in_caddy,
    stand_in_python,
)
from tests.e2e.test_caddy import INTERNAL_ROOT, bound_to_loopback
from tests.e2e.test_systemd import gunicorn_settings
from tests.integration.helpers import (
    DEFAULT_TEXT,
    MODEL,
    assert_valid_stream,
    closed_port,
    create,
    sse_events,
    stream,
)
from tests.processes import proc_status, worker_pids
from tests.tls import assert_clean_start
from tests.unit.test_dockerfile import arguments

try:  # openai 3.x ships its transport as httpx2
    import httpx2 as httpx
except ImportError:  # pragma: no cover - openai 1.x/2.x
    import httpx

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
ENV_SAMPLE = ROOT / ".env.sample"
CADDYFILE = ROOT / "caddy" / "Caddyfile"
STOP_TIMEOUT = 70  # docker run --stop-timeout, as docs/DEPLOYMENT.md gives it
HEALTHY_TIMEOUT = 60.0
COMPOSE_TIMEOUT = 180.0
BACKEND_CERT = "/etc/gateway/backend.crt"
MODEL_SERVER = "http://model-server:8000/v1"
# A cold session debootstraps the base image before the first test: minutes, not 120 s.
COLD_START_TIMEOUT = 900

pytestmark = [pytest.mark.slow, pytest.mark.timeout(COLD_START_TIMEOUT)]


def compose_services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    if os.geteuid() != 0:
        pytest.skip("the Docker tests run dockerd, which needs root")
    if DOCKERD is None or DOCKER is None:
        pytest.skip(
            "dockerd or docker is not installed (scripts/install-test-tools installs docker.io)"
        )
    # Short: the daemon's socket paths must fit in a sun_path (108 bytes).
    directory = Path(tempfile.mkdtemp(prefix="gw-docker-"))
    started = DockerEngine(directory)
    try:
        started.wait_until_ready()
        yield started
    finally:
        started.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def gateway_image(engine: DockerEngine) -> str:
    """The image built from the Dockerfile, tagged as compose.yaml names it."""
    (base,) = arguments("FROM")
    try:
        ensure_image(engine, base, stand_in_python)
    except StandInUnavailable as reason:
        pytest.skip(str(reason))
    name = compose_services()["gateway"]["image"]
    engine.docker("build", "--network", "host", "--tag", name, str(ROOT), timeout=BUILD_TIMEOUT)
    return name


@pytest.fixture(scope="session")
def caddy_image(engine: DockerEngine, gateway_image: str) -> str:
    """compose.yaml's Caddy image: pulled, or Debian's caddy on the stand-in base."""
    name = compose_services()["caddy"]["image"]
    ensure_image(engine, name, stand_in_caddy)
    return name


@dataclass
class Container:
    """One running gateway container, reached on a loopback port of the host's network."""

    engine: DockerEngine
    name: str
    url: str

    def inspect(self, template: str) -> str:
        return self.engine.docker("inspect", "--format", template, self.name).stdout.strip()

    def logs(self) -> str:
        shown = self.engine.docker("logs", self.name)
        return shown.stdout + shown.stderr

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + HEALTHY_TIMEOUT
        while time.monotonic() < deadline:
            status, running = self.inspect("{{.State.Health.Status}} {{.State.Running}}").split()
            if status == "healthy":
                return
            if running != "true":
                break
            time.sleep(0.2)
        raise AssertionError(f"{self.name} never became healthy ({status}):\n{self.logs()}")

    def sdk(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.url}/v1",
            api_key=TEST_KEY,
            http_client=httpx.Client(trust_env=False, timeout=30.0),
            max_retries=0,
        )


@pytest.fixture
def gateway_container(
    engine: DockerEngine, gateway_image: str, https_backend: tuple[fb.FakeBackend, Path]
) -> Iterator[Container]:
    backend, cert = https_backend
    port = closed_port()
    name = f"gateway-test-{port}"
    engine.docker(
        "run", "--detach", "--name", name, "--network", "host",
        "--env", f"HOST_PORT=127.0.0.1:{port}",
        "--env", f"OPENAI_API_ENDPOINT={backend.base_url}",
        "--env", f"BACKEND_CA_BUNDLE={BACKEND_CERT}",
        "--env", "GATEWAY_WORKERS=2",
        "--volume", f"{cert}:{BACKEND_CERT}:ro",
        "--health-interval", "1s",
        "--stop-timeout", str(STOP_TIMEOUT),
        gateway_image,
    )  # fmt: skip
    container = Container(engine, name, f"http://127.0.0.1:{port}")
    try:
        container.wait_until_healthy()
        yield container
    finally:
        engine.docker("rm", "--force", name, check=False)


def test_image_serves_json_and_a_stream_from_an_https_backend(gateway_container, https_backend):
    backend, _ = https_backend
    with gateway_container.sdk() as sdk:
        first = create(sdk, input="Hi")
        second = stream(sdk, input="Again", previous_response_id=first.response.id)
    assert first.response.output_text == DEFAULT_TEXT
    assert second.response.output_text == DEFAULT_TEXT
    assert second.response.previous_response_id == first.response.id
    assert len(backend.chat_requests()) == 2
    assert backend.requests[-1].headers["authorization"] == f"Bearer {TEST_KEY}"
    assert_clean_start(gateway_container.logs())


def test_gunicorn_and_its_workers_run_as_uid_10001(gateway_container):
    assert gateway_container.inspect("{{.Config.User}}") == "10001:10001"
    master = int(gateway_container.inspect("{{.State.Pid}}"))
    workers = worker_pids(master, expected=2, timeout=HEALTHY_TIMEOUT)
    assert len(workers) == 2, f"gunicorn {master} has children {workers}"
    for pid in [master, *workers]:
        assert b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()
        status = proc_status(pid)
        assert set(status["Uid"].split()) == {"10001"}, status["Uid"]
        assert set(status["Gid"].split()) == {"10001"}, status["Gid"]


def test_docker_stop_lets_a_stream_finish_and_exits_cleanly(gateway_container, https_backend):
    backend, _ = https_backend
    graceful = gunicorn_settings({})["graceful_timeout"]
    assert graceful < STOP_TIMEOUT, "docker would kill streams gunicorn still lets finish"
    backend.enqueue(fb.text("one two three four five six", chunk_size=4, delay=0.3))
    stopped: dict[str, Any] = {}

    def stop() -> None:
        start = time.monotonic()
        stopped["result"] = gateway_container.engine.docker(
            "stop", "--time", str(STOP_TIMEOUT), gateway_container.name, timeout=STOP_TIMEOUT + 30
        )
        stopped["seconds"] = time.monotonic() - start

    stopper = threading.Thread(target=stop)
    lines = []
    with (
        gateway_container.sdk() as sdk,
        sdk.responses.with_streaming_response.create(
            model=MODEL, input="Count.", stream=True
        ) as raw,
    ):
        for line in raw.iter_lines():
            lines.append(line)
            if not stopper.is_alive() and "response.output_text.delta" in line:
                stopper.start()  # SIGTERM while the backend is still sending
    stopper.join(STOP_TIMEOUT + 30)
    assert "result" in stopped, "docker stop never returned"
    response = assert_valid_stream(sse_events(lines))
    assert response.status == "completed"
    assert response.output_text == "one two three four five six"
    assert stopped["seconds"] < STOP_TIMEOUT, f"docker stop took {stopped['seconds']:.1f} s"
    assert gateway_container.inspect("{{.State.ExitCode}}") == "0"
    logs = gateway_container.logs()
    assert "Handling signal: term" in logs
    assert "Shutting down: Master" in logs


# compose.yaml ----------------------------------------------------------------


def env_sample(**values: str) -> str:
    """.env.sample with `values` in place of its own (appended when it has no such line)."""
    text = ENV_SAMPLE.read_text()
    for name, value in values.items():
        text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.MULTILINE)
        if not count:
            text += f"{name}={value}\n"
    return text


def compose(
    directory: Path,
    *args: str,
    files: list[Path],
    env: str = "",
    environ: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run docker-compose with `env` as its .env file and only `environ` (PATH, HOME by default):
    compose prefers the shell's variables to the file's, so none of this shell's may leak in."""
    if DOCKER_COMPOSE is None:
        pytest.skip("docker-compose is not installed (scripts/install-test-tools installs it)")
    env_file = directory / "compose.env"
    env_file.write_text(env)
    command = [DOCKER_COMPOSE, "--env-file", str(env_file)]
    command += [word for file in files for word in ("--file", str(file))]
    environ = environ or {"PATH": os.environ.get("PATH", ""), "HOME": str(directory)}
    return run_client([*command, *args], environ, COMPOSE_TIMEOUT, check)


def compose_config(directory: Path, env: str, files: list[Path] | None = None) -> dict[str, Any]:
    """compose.yaml (and `files` over it) as docker-compose resolves it."""
    resolved = compose(directory, "config", env=env, files=[COMPOSE_FILE, *(files or [])])
    return yaml.safe_load(resolved.stdout)


def caddyfile_defaults() -> dict[str, str]:
    """Each {$NAME:default} placeholder of the shipped Caddyfile."""
    return dict(re.findall(r"\{\$(\w+):([^}]*)\}", CADDYFILE.read_text()))


def seconds(duration: str) -> float:
    """A compose duration such as `1m10s` or `70s`."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[unit] for n, unit in re.findall(r"(\d+)([hms])", duration))


def test_env_sample_lists_every_variable_compose_reads():
    read = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    listed = set(re.findall(r"^#?\s*(\w+)=", ENV_SAMPLE.read_text(), re.MULTILINE))
    assert read <= listed, f"compose.yaml reads {sorted(read - listed)}, .env.sample omits them"


def test_compose_config_puts_caddy_with_the_shipped_caddyfile_before_the_gateway(tmp_path):
    config = compose_config(tmp_path, env_sample())
    gateway, caddy = config["services"]["gateway"], config["services"]["caddy"]
    assert gateway["build"]["context"] == str(ROOT)
    assert "ports" not in gateway, "only Caddy is published"
    assert f"{CADDYFILE}:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert caddy["depends_on"]["gateway"]["condition"] == "service_healthy"
    defaults = caddyfile_defaults()
    # compose.yaml's own defaults (an .env with the endpoint alone), then .env.sample's values.
    for env in (f"OPENAI_API_ENDPOINT={MODEL_SERVER}\n", env_sample()):
        given = compose_config(tmp_path, env)["services"]["caddy"]["environment"]
        for name, value in given.items():
            assert value == defaults[name], f"{name}: {value}, the Caddyfile's {defaults[name]}"
    published = {(p["published"], p["target"], p.get("protocol", "tcp")) for p in caddy["ports"]}
    https, http = int(defaults["CADDY_PORT"]), int(defaults["CADDY_HTTP_PORT"])
    assert published == {(http, http, "tcp"), (https, https, "tcp"), (https, https, "udp")}
    graceful = gunicorn_settings({})["graceful_timeout"]
    for service in (gateway, caddy):
        assert seconds(service["stop_grace_period"]) > graceful
    environment = gateway["environment"]
    load_settings(environ=environment)  # raises on a setting the gateway would refuse
    store = (environment["SESSION_STORE_TYPE"], environment["SESSION_STORE_DSN"])
    assert store == ("sqlite", "/data/responses.db")
    assert any(volume.endswith(":/data:rw") for volume in gateway["volumes"])


def test_compose_postgres_profile_gives_the_gateway_its_database(tmp_path):
    dsn = "postgresql://gateway:s3cret@postgres:5432/gateway"
    env = env_sample(
        POSTGRES_PASSWORD="s3cret", SESSION_STORE_TYPE="postgres", SESSION_STORE_DSN=dsn
    )
    services = compose_config(tmp_path, env)["services"]
    postgres = services["postgres"]
    assert postgres["profiles"] == ["postgres"]
    assert "postgres" not in services["gateway"].get("depends_on", {}), "breaks without profile"
    environment = services["gateway"]["environment"]
    load_settings(environ=environment)  # a postgres store needs a postgresql:// URL
    assert (environment["SESSION_STORE_TYPE"], environment["SESSION_STORE_DSN"]) == (
        "postgres",
        dsn,
    )
    user, password, database = (
        postgres["environment"][name]
        for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")
    )
    assert dsn == f"postgresql://{user}:{password}@postgres:5432/{database}"


def compose_running(engine: DockerEngine, project: str) -> set[str]:
    listed = engine.docker(
        "ps", "--all", "--filter", f"label=com.docker.compose.project={project}",
        "--format", '{{.Label "com.docker.compose.service"}}',
    )  # fmt: skip
    return set(listed.stdout.split())


def test_compose_brings_up_the_gateway_behind_caddy(
    tmp_path, engine, gateway_image, caddy_image, https_backend
):
    backend, cert = https_backend
    ports = {name: closed_port() for name in ("gateway", "https", "http", "admin")}
    env = env_sample(
        OPENAI_API_ENDPOINT=backend.base_url,
        CADDY_DOMAIN="127.0.0.1",
        CADDY_PORT=str(ports["https"]),
        CADDY_HTTP_PORT=str(ports["http"]),
    )
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(bound_to_loopback(CADDYFILE.read_text()))
    # Test only: the fake backend listens on the host's loopback, which a
    # container reaches only on the host's network; so both services use it,
    # on loopback ports (the gateway's HOST_PORT, Caddy's default_bind).
    override = tmp_path / "compose.override.yaml"
    override.write_text(
        yaml.safe_dump(
            {
                "services": {
                    "gateway": {
                        "network_mode": "host",
                        "environment": {
                            "HOST_PORT": f"127.0.0.1:{ports['gateway']}",
                            "BACKEND_CA_BUNDLE": BACKEND_CERT,
                            "GATEWAY_WORKERS": "2",
                        },
                        "volumes": [f"{cert}:{BACKEND_CERT}:ro"],
                        "healthcheck": {"interval": "1s"},
                    },
                    "caddy": {
                        "network_mode": "host",
                        "environment": {
                            "CADDY_UPSTREAM": f"127.0.0.1:{ports['gateway']}",
                            "CADDY_ADMIN": f"127.0.0.1:{ports['admin']}",
                        },
                        "volumes": [f"{caddyfile}:/etc/caddy/Caddyfile:ro"],
                    },
                }
            }
        )
    )
    # An override cannot drop compose.yaml's published ports (v1 has no
    # `!reset`), and the host's network refuses them: drop them from the
    # resolved file, which is what then runs.
    config = compose_config(tmp_path, env, [override])
    for service in config["services"].values():
        if service.get("network_mode") == "host":
            service.pop("ports", None)
    resolved = tmp_path / "compose.resolved.yaml"
    resolved.write_text(yaml.safe_dump(config))
    project = f"gatewaytest{ports['gateway']}"

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        options = ("--project-name", project, *args)
        return compose(tmp_path, *options, files=[resolved], environ=engine.environ, check=check)

    try:
        run("up", "--detach", "--no-build")
        assert compose_running(engine, project) == {"gateway", "caddy"}, "postgres without profile"
        root = tmp_path / "caddy-root.crt"
        root.write_text(
            internal_root(
                lambda: run("exec", "-T", "caddy", "cat", f"/data/{INTERNAL_ROOT}", check=False)
            )
        )
        verify = ssl.create_default_context(cafile=str(root))
        base = f"https://127.0.0.1:{ports['https']}"
        with httpx.Client(verify=verify, trust_env=False, timeout=30.0) as client:
            wait_until_ok(client, f"{base}/health", lambda: run("logs").stdout)
            sdk = openai.OpenAI(
                base_url=f"{base}/v1", api_key=TEST_KEY, http_client=client, max_retries=0
            )
            first = create(sdk, input="Hi")
            second = stream(sdk, input="Again", previous_response_id=first.response.id)
        assert second.response.output_text == DEFAULT_TEXT
        assert len(backend.chat_requests()) == 2
        assert_clean_start(run("logs", "gateway").stdout)
    finally:
        run("down", "--volumes", "--timeout", "10")
    assert compose_running(engine, project) == set()


def internal_root(read: Callable[[], subprocess.CompletedProcess[str]]) -> str:
    """Caddy's internal CA root, once Caddy has made it (`read` prints the file)."""
    deadline = time.monotonic() + HEALTHY_TIMEOUT
    while True:
        shown = read()
        if shown.returncode == 0 and "BEGIN CERTIFICATE" in shown.stdout:
            return shown.stdout
        assert time.monotonic() < deadline, f"Caddy never made its CA:\n{shown.stderr}"
        time.sleep(0.2)


def wait_until_ok(client: httpx.Client, url: str, logs: Callable[[], str]) -> None:
    deadline = time.monotonic() + HEALTHY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if client.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered 200:\n{logs()}")
