"""The Dockerfile and .dockerignore, checked as files (no Docker engine runs here).

Checked: a slim Python base, a non-root USER, the SQLite file on the /data
volume, the port exposed where the gateway listens, every ENV name one the
gateway reads and the ENV values valid settings, a HEALTHCHECK on /health
(its command is run for real against a served app), gunicorn with
gunicorn.conf.py as the entry point, every COPY source present and not
excluded by .dockerignore, enough copied before `pip install .` to build the
package, and .dockerignore keeping out local state (.venv, .git, data).

`gateway_env_names()` (the environment names the gateway reads) is shared
with tests/e2e/test_systemd.py.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import BACKEND_ENV_KEYS, ENV_KEYS, load_settings
from tests.integration.helpers import closed_port, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
# Environment read by Python and pip themselves, not by the gateway.
TOOL_ENV_PREFIXES = ("PYTHON", "PIP_")
HEALTHCHECK_TIMEOUT = 30
ENV_READ = re.compile(r"(?:environ(?:\.get\(|\[)|_number\()\s*[\"']([A-Z][A-Z0-9_]*)[\"']")


def gateway_env_names() -> set[str]:
    """Every environment variable the gateway or its gunicorn.conf.py reads."""
    names = set(ENV_KEYS) | set(BACKEND_ENV_KEYS)
    for source in [ROOT / "gunicorn.conf.py", *sorted((ROOT / "app").rglob("*.py"))]:
        names |= set(ENV_READ.findall(source.read_text()))
    return names


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile: comments dropped, continuations joined."""
    logical, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return [
        (name.upper(), rest.strip()) for name, rest in (line.split(None, 1) for line in logical)
    ]


def arguments(name: str) -> list[str]:
    """The arguments of every `name` instruction, in order."""
    return [rest for instruction, rest in instructions() if instruction == name]


def exec_form(value: str) -> list[str]:
    """A JSON-array (exec form) argument list; the shell form is refused."""
    assert value.startswith("["), f"use the exec form (a JSON array), got {value!r}"
    return json.loads(value)


def image_env() -> dict[str, str]:
    """The variables the ENV instructions set (NAME=value form)."""
    env: dict[str, str] = {}
    for rest in arguments("ENV"):
        for pair in shlex.split(rest):
            name, sep, value = pair.partition("=")
            assert sep, f"use ENV NAME=value, got {pair!r}"
            env[name] = value
    return env


def gateway_env() -> dict[str, str]:
    return {k: v for k, v in image_env().items() if not k.startswith(TOOL_ENV_PREFIXES)}


def copies() -> list[tuple[int, list[str]]]:
    """(position among the instructions, sources) of every COPY."""
    return [
        (position, shlex.split(rest)[:-1])
        for position, (name, rest) in enumerate(instructions())
        if name == "COPY"
    ]


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` (or a folder holding it) out of the build context."""
    patterns = [
        line.strip().strip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    return any(
        fnmatch.fnmatchcase(prefix, pattern.removeprefix("**/"))
        or fnmatch.fnmatchcase(prefix, pattern)
        for pattern in patterns
        for prefix in prefixes
    )


def test_base_image_is_slim_python():
    (base,) = arguments("FROM")
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", base), base


def test_runs_as_a_non_root_user():
    users = arguments("USER")
    assert users, "no USER: the gateway would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_sqlite_file_and_uploaded_files_are_on_the_data_volume():
    assert any(
        "/data" in shlex.split(rest.strip("[]").replace(",", " ")) for rest in arguments("VOLUME")
    )
    env = gateway_env()
    assert env["SESSION_STORE_TYPE"] == "sqlite"
    assert env["SESSION_STORE_DSN"] == "/data/responses.db"
    assert env["FILE_STORE_BASE_DIR"] == "/data/files"


def test_env_names_are_read_by_the_gateway():
    unknown = set(gateway_env()) - gateway_env_names()
    assert not unknown, f"ENV names nothing reads: {sorted(unknown)}"


def test_env_values_are_valid_settings_listening_on_the_exposed_port():
    settings = load_settings(environ=gateway_env())
    assert settings.server.host == "0.0.0.0"
    assert arguments("EXPOSE") == [str(settings.server.port)]
    assert settings.store.dsn == "/data/responses.db"


def test_entry_point_is_gunicorn_with_the_shipped_config():
    command = [*map(exec_form, arguments("ENTRYPOINT")), *map(exec_form, arguments("CMD"))]
    argv = [word for part in command for word in part]
    assert argv[:3] == ["gunicorn", "-c", "gunicorn.conf.py"], argv
    assert "wsgi:app" in argv
    copied = {source for _, sources in copies() for source in sources}
    assert {"gunicorn.conf.py", "wsgi.py"} <= copied


def test_healthcheck_asks_health():
    (healthcheck,) = arguments("HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD")
    assert "--interval" in options and "--timeout" in options
    assert "/health" in " ".join(exec_form(command.strip()))


def healthcheck_exit_code(port: int) -> int:
    """Run the HEALTHCHECK command with this Python, HOST_PORT pointing at `port`."""
    (healthcheck,) = arguments("HEALTHCHECK")
    command = exec_form(healthcheck.partition("CMD")[2].strip())
    assert command[0] == "python"
    environ = {"HOST_PORT": f"127.0.0.1:{port}"}
    completed = subprocess.run(
        [sys.executable, *command[1:]],
        env=environ,
        capture_output=True,
        timeout=HEALTHCHECK_TIMEOUT,
    )
    return completed.returncode


@pytest.mark.slow
def test_healthcheck_command_passes_on_a_serving_gateway_and_fails_without_one(app):
    with serve_in_thread(app) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        assert healthcheck_exit_code(port) == 0
    assert healthcheck_exit_code(closed_port()) != 0


def test_every_copied_source_exists_and_is_in_the_build_context():
    for _, sources in copies():
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert not ignored(source), f"COPY {source}: excluded by .dockerignore"


def test_package_sources_are_copied_before_pip_install():
    (install_at,) = [
        position
        for position, (name, rest) in enumerate(instructions())
        if name == "RUN" and "pip install ." in rest
    ]
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    readme = setup["metadata"]["long_description"].removeprefix("file:").strip()
    before = {
        source for position, sources in copies() if position < install_at for source in sources
    }
    assert {"pyproject.toml", "setup.cfg", readme, "app"} <= before


@pytest.mark.parametrize("path", [".git", ".venv", "data", "data/responses.db", "app/__pycache__"])
def test_dockerignore_keeps_local_state_out(path):
    assert ignored(path)
