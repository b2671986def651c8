"""The shipped systemd unit (systemd/responses-gateway.service) and its env file example.

`systemd-analyze verify` checks the unit where it is installed (no systemd
runs as PID 1 here: verify only parses and resolves); the unit's paths are
pointed at a temporary tree holding this test's gunicorn so that verify can
check ExecStart. The unit's ExecStart is run with the unit's environment:
gunicorn tells the notify socket READY=1 (Type=notify) and stops cleanly on
SIGTERM. Then the unit is checked against the gateway itself: gunicorn with
gunicorn.conf.py from the checkout, a stop timeout longer than gunicorn's
graceful timeout, enough file descriptors for the worker connections, the
hardening keys, the database and metrics in the unit's writable directories,
every variable set one the gateway reads, and the env file's values loading
as valid settings that listen where nginx's upstream points.
"""

from __future__ import annotations

import os
import re
import runpy
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from app.config import load_settings
from tests.e2e.test_nginx import running, wait_for
from tests.integration.helpers import closed_port
from tests.unit.test_dockerfile import gateway_env_names

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "responses-gateway.service"
SWEEP_UNIT = ROOT / "systemd" / "responses-gateway-sweep.service"
SWEEP_TIMER = ROOT / "systemd" / "responses-gateway-sweep.timer"
ENV_FILE = "/etc/responses-gateway/gateway.env"
ENV_EXAMPLE = ROOT / "systemd" / "responses-gateway.env.example"
NGINX_SITE = ROOT / "nginx" / "responses-gateway.conf"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
READY_TIMEOUT = 30.0
INSTALL_DIR = "/opt/responses-gateway"
REQUIRED = {
    "Type": "notify",
    "NotifyAccess": "main",
    "Restart": "on-failure",
    "KillSignal": "SIGTERM",
    "KillMode": "mixed",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "DynamicUser": "yes",
    "StateDirectory": "responses-gateway",
    "RuntimeDirectory": "responses-gateway",
    "ReadWritePaths": "/var/lib/responses-gateway",
}


def unit_entries(text: str) -> dict[str, list[tuple[str, str]]]:
    """Section -> [(key, value)] in order; repeated keys (Environment=) kept."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def service(unit: Path = UNIT) -> dict[str, str]:
    """The [Service] keys (the last value of a repeated key)."""
    return dict(unit_entries(unit.read_text())["Service"])


def unit_environment(unit: Path = UNIT) -> dict[str, str]:
    """The variables the unit's Environment= lines set."""
    pairs = [
        value for key, value in unit_entries(unit.read_text())["Service"] if key == "Environment"
    ]
    return dict(pair.partition("=")[::2] for pair in pairs)


def env_example(commented: bool = False) -> dict[str, str]:
    """NAME=value lines of the env file example (with `#NAME=value` ones if `commented`)."""
    pattern = r"^(#?)([A-Z][A-Z0-9_]*)=(.*)$"
    return {
        name: value
        for hashed, name, value in re.findall(pattern, ENV_EXAMPLE.read_text(), re.MULTILINE)
        if commented or not hashed
    }


def runtime_environment() -> dict[str, str]:
    """What the service process sees: the unit's Environment=, overridden by the file."""
    return {**unit_environment(), **env_example()}


def gunicorn_settings(environ: dict[str, str]) -> dict[str, object]:
    """gunicorn.conf.py's module globals as gunicorn would load them under `environ`."""
    with mock.patch.dict("os.environ", environ, clear=True):
        return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def seconds(value: str) -> float:
    """A systemd time span such as `90s`, `2min` or `90`."""
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60}
    number, unit = re.fullmatch(r"(\d+)\s*([a-z]*)", value).groups()
    return int(number) * units[unit]


@pytest.mark.slow
@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("shipped", [UNIT, SWEEP_UNIT, SWEEP_TIMER], ids=lambda path: path.name)
def test_unit_passes_systemd_analyze_verify(tmp_path, shipped):
    install = tmp_path / "opt"
    (install / ".venv/bin").mkdir(parents=True)
    for program in ("gunicorn", "gateway"):
        (install / ".venv/bin" / program).symlink_to(Path(sys.executable).parent / program)
    for each in (UNIT, SWEEP_UNIT, SWEEP_TIMER):  # a timer is verified with its service
        text = each.read_text().replace(INSTALL_DIR, str(install))
        (tmp_path / each.name).write_text(text.replace(ENV_FILE, str(ENV_EXAMPLE)))
    verified = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(tmp_path / shipped.name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    complaints = [line for line in verified.stderr.splitlines() if "responses-gateway" in line]
    assert verified.returncode == 0 and not complaints, verified.stderr


def test_sweep_unit_runs_as_the_gateway_on_its_store():
    keys, sweeper = service(), service(SWEEP_UNIT)
    assert sweeper["ExecStart"] == f"{INSTALL_DIR}/.venv/bin/gateway sweep"
    assert sweeper["Type"] == "oneshot"
    # The gateway's dynamic user is named after its unit: the sweeper takes the same one.
    assert (sweeper["DynamicUser"], sweeper["User"]) == ("yes", UNIT.stem)
    for key in ("WorkingDirectory", "EnvironmentFile", "StateDirectory", "ReadWritePaths"):
        assert sweeper[key] == keys[key], key
    # The same store, and the same files' bytes (the sweep removes those of expired files).
    assert unit_environment(SWEEP_UNIT) == {
        name: value
        for name, value in unit_environment().items()
        if name.startswith(("SESSION_", "FILE_STORE_"))
    }
    timer = dict(unit_entries(SWEEP_TIMER.read_text())["Timer"])
    assert timer["OnCalendar"] and timer["Persistent"] == "true"
    assert SWEEP_TIMER.stem == SWEEP_UNIT.stem  # the timer starts the service of its name


@pytest.mark.slow
def test_sweep_unit_execstart_sweeps_the_units_store(tmp_path):
    command = service(SWEEP_UNIT)["ExecStart"].split()
    command[0] = str(Path(sys.executable).parent / "gateway")
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **unit_environment(SWEEP_UNIT),
        **env_example(),
        "SESSION_STORE_DSN": str(tmp_path / "responses.db"),
        "FILE_STORE_BASE_DIR": str(tmp_path / "files"),
        "GATEWAY_STORE_TTL": "30d",
    }
    swept = subprocess.run(
        command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
    )
    assert swept.returncode == 0, swept.stderr
    assert swept.stdout.startswith("swept: responses=0")


def test_unit_has_the_required_keys():
    keys = service()
    wrong = {key: keys.get(key) for key, value in REQUIRED.items() if keys.get(key) != value}
    assert not wrong, f"expected {REQUIRED}, differing: {wrong}"
    assert keys["EnvironmentFile"] == "/etc/responses-gateway/gateway.env"
    assert unit_entries(UNIT.read_text())["Install"] == [("WantedBy", "multi-user.target")]


def test_unit_runs_gunicorn_with_the_shipped_config_from_the_checkout():
    keys = service()
    assert keys["WorkingDirectory"] == INSTALL_DIR
    command = keys["ExecStart"].split()
    assert command == [f"{INSTALL_DIR}/.venv/bin/gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    assert (ROOT / "gunicorn.conf.py").is_file() and (ROOT / "wsgi.py").is_file()


def test_stop_timeout_outlasts_gunicorns_graceful_timeout(tmp_path):
    environ = {**runtime_environment(), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    graceful = gunicorn_settings(environ)["graceful_timeout"]
    assert seconds(service()["TimeoutStopSec"]) > graceful


@pytest.mark.slow
def test_execstart_tells_systemd_it_is_ready_and_stops_on_sigterm(tmp_path):
    keys, port = service(), closed_port()
    command = keys["ExecStart"].split()
    command[0] = str(Path(sys.executable).parent / "gunicorn")
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **runtime_environment(),
        "HOST_PORT": f"127.0.0.1:{port}",
        "SESSION_STORE_DSN": str(tmp_path / "responses.db"),
        "FILE_STORE_BASE_DIR": str(tmp_path / "files"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "GATEWAY_WORKERS": "1",
        "NOTIFY_SOCKET": str(tmp_path / "notify"),
    }
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(environ["NOTIFY_SOCKET"])
        notify.settimeout(READY_TIMEOUT)
        log = tmp_path / "gunicorn.log"
        with running(command, log, cwd=ROOT, env=environ) as gateway:
            assert b"READY=1" in notify.recv(4096).split(b"\n")
            wait_for(f"http://127.0.0.1:{port}/health", False, gateway, log)
            gateway.terminate()
            assert gateway.wait(seconds(keys["TimeoutStopSec"])) == 0, log.read_text()


def test_open_files_limit_covers_every_worker_connection_twice(tmp_path):
    environ = {**runtime_environment(), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    per_worker = gunicorn_settings(environ)["worker_connections"]
    # Each stream holds its client's connection and one to the backend.
    assert int(service()["LimitNOFILE"]) >= 2 * per_worker + 1024


def test_database_files_and_metrics_are_in_the_units_writable_directories():
    keys, environ = service(), runtime_environment()
    state = f"/var/lib/{keys['StateDirectory']}"
    assert Path(environ["SESSION_STORE_DSN"]).parent == Path(state)
    assert Path(state) in Path(environ["FILE_STORE_BASE_DIR"]).parents
    assert keys["ReadWritePaths"] == state
    runtime = Path(f"/run/{keys['RuntimeDirectory']}")
    assert runtime in Path(environ["PROMETHEUS_MULTIPROC_DIR"]).parents


def test_every_variable_set_is_one_the_gateway_reads():
    names = set(unit_environment()) | set(env_example(commented=True))
    unknown = names - gateway_env_names()
    assert not unknown, f"variables nothing reads: {sorted(unknown)}"


def test_env_example_values_load_as_settings():
    settings = load_settings(environ=runtime_environment())
    assert settings.store.type == "sqlite"
    assert settings.store.dsn == "/var/lib/responses-gateway/responses.db"
    assert settings.backends[0].read_timeout == 600


def test_gateway_listens_where_nginx_expects_it():
    upstream = re.search(r"upstream \w+ \{\s*server (\S+);", NGINX_SITE.read_text()).group(1)
    assert runtime_environment()["HOST_PORT"] == upstream
    settings = load_settings(environ=runtime_environment())
    assert f"{settings.server.host}:{settings.server.port}" == upstream
