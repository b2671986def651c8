"""Settings (app/config.py): defaults <- YAML file <- environment <- overrides.

Every call passes an explicit `environ` dict, so the real environment of
the test run never leaks in. Invalid values raise `ConfigError` with a
message that names the key the operator wrote: the environment variable
when the value came from the environment, the YAML key when it came from
the file.
"""

from __future__ import annotations

import logging
import os
import runpy
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
import yaml

from app.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def settings(environ: dict[str, str] | None = None, **kwargs: Any) -> Settings:
    return load_settings(environ=environ or {}, **kwargs)


def config_error(environ: dict[str, str] | None = None, **kwargs: Any) -> str:
    """Load settings expecting a ConfigError; return its message."""
    with pytest.raises(ConfigError) as caught:
        settings(environ, **kwargs)
    return str(caught.value)


@pytest.fixture
def yaml_file(tmp_path: Path):
    """Write a YAML config file and return its path."""

    def write(data: Any) -> str:
        path = tmp_path / "gateway.yaml"
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
        return str(path)

    return write


def first_backend(result: Settings):
    assert len(result.backends) == 1
    return result.backends[0]


# --- defaults -----------------------------------------------------------------


def test_defaults_listen_on_loopback_8080():
    result = settings()
    assert (result.server.host, result.server.port) == ("127.0.0.1", 8080)


def test_default_store_is_a_sqlite_file():
    result = settings()
    assert result.store.type == "sqlite"
    assert result.store.dsn.endswith(".db") and "://" not in result.store.dsn


def test_default_backend_is_a_local_chat_completions_server():
    backend = first_backend(settings())
    assert backend.base_url.startswith("http://127.0.0.1:")
    assert backend.chat_url == backend.base_url + "/chat/completions"
    assert backend.api_key is None
    assert backend.reasoning_field == "reasoning_content"
    assert backend.max_tokens_field == "max_tokens"


def test_backend_pools_keep_as_many_connections_as_a_worker_serves(yaml_file):
    assert first_backend(settings()).pool_size == 1000  # gunicorn's default worker_connections
    assert first_backend(settings({"GATEWAY_WORKER_CONNECTIONS": "5100"})).pool_size == 5100
    configured = yaml_file({"backends": [{"pool_size": 50}]})
    environ = {"GATEWAY_WORKER_CONNECTIONS": "5100"}
    assert first_backend(settings(environ, config_path=configured)).pool_size == 50


def gunicorn_conf(environ: dict[str, str]) -> dict[str, Any]:
    """app/gunicorn.conf.py's settings under `environ` alone; the test's environment is kept."""
    with mock.patch.dict(os.environ, environ, clear=True):
        return runpy.run_path(str(ROOT / "app" / "gunicorn.conf.py"))


def started(
    environ: dict[str, str],
    workers: int = 1,
    connections: int = 1000,
    bind: tuple[str, ...] = ("127.0.0.1:8080",),
) -> dict[str, str]:
    """The environment gunicorn's master hands its workers, from `environ` (kept as it is)."""
    config = SimpleNamespace(workers=workers, worker_connections=connections, bind=list(bind))
    server = SimpleNamespace(cfg=config, log=logging.getLogger("gunicorn.error"))
    with mock.patch.dict(os.environ, environ, clear=True):
        conf = runpy.run_path(str(ROOT / "app" / "gunicorn.conf.py"))
        assert os.environ == environ, "loading gunicorn.conf.py changed the environment"
        conf["on_starting"](server)
        handed = dict(os.environ)
        conf["on_exit"](server)
    return handed


@pytest.mark.parametrize(
    ("bind", "refused"),
    [
        (("0.0.0.0:8080",), True),
        (("127.0.0.1:8080", "[::]:8080"), True),
        (("127.0.0.1:8080", "[::1]:8080"), False),
        (("unix:/run/gateway.sock",), False),
    ],
)
def test_gunicorn_refuses_to_lend_backend_keys_on_what_it_really_binds(bind, refused):
    # HOST_PORT says loopback; GUNICORN_CMD_ARGS (here: the bind) may say otherwise.
    environ = {"OPENAI_API_KEY": "sk-operator-0123456789", "HOST_PORT": "127.0.0.1:8080"}
    if refused:
        with pytest.raises(SystemExit):
            started(environ, bind=bind)
    else:
        assert started(environ, bind=bind)["GATEWAY_WORKERS"] == "1"


def test_gunicorn_tells_the_app_how_many_connections_a_worker_serves(tmp_path):
    handed = started({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}, workers=3, connections=4321)
    told = {name: handed[name] for name in ("GATEWAY_WORKERS", "GATEWAY_WORKER_CONNECTIONS")}
    assert told == {"GATEWAY_WORKERS": "3", "GATEWAY_WORKER_CONNECTIONS": "4321"}
    assert first_backend(settings(told)).pool_size == 4321


def test_gunicorn_workers_answer_numeric_addresses_without_a_lookup(tmp_path):
    environ = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    assert started(environ)["GEVENT_RESOLVER"] == "app.backends.resolver.Resolver"
    chosen = started({**environ, "GEVENT_RESOLVER": "ares"})
    assert chosen["GEVENT_RESOLVER"] == "ares"  # the operator's choice stays


def test_gunicorn_makes_a_metrics_directory_for_its_start_and_removes_it(tmp_path):
    made = Path(started({})["PROMETHEUS_MULTIPROC_DIR"])
    assert made.name.startswith("gateway-metrics-") and not made.exists()
    named = tmp_path / "metrics"
    (named / "stale").mkdir(parents=True)
    (named / "counter_1.db").write_bytes(b"old")
    assert started({"PROMETHEUS_MULTIPROC_DIR": str(named)})["PROMETHEUS_MULTIPROC_DIR"] == str(
        named
    )
    assert named.is_dir() and not (named / "counter_1.db").exists()  # emptied, kept


def test_gunicorn_control_socket_is_off_unless_given_a_path(tmp_path):
    environ = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    assert gunicorn_conf(environ)["control_socket_disable"] is True
    given = gunicorn_conf({**environ, "GATEWAY_CONTROL_SOCKET": str(tmp_path / "ctl")})
    assert (given["control_socket_disable"], given["control_socket"]) == (
        False,
        str(tmp_path / "ctl"),
    )


def test_defaults_do_not_read_the_process_environment(monkeypatch):
    monkeypatch.setenv("HOST_PORT", "9999")
    assert settings().server.port == 8080


# --- the deployment guides' environment variables -----------------------------


@pytest.mark.parametrize(
    ("endpoint", "base_url"),
    [
        ("http://localhost:11434/v1", "http://localhost:11434/v1"),
        ("https://api.example.com/v1/", "https://api.example.com/v1"),
    ],
)
def test_openai_api_endpoint_sets_the_backend_base(endpoint, base_url):
    backend = first_backend(settings({"OPENAI_API_ENDPOINT": endpoint}))
    assert backend.base_url == base_url
    assert backend.chat_url == base_url + "/chat/completions"


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.5:8000/v1/chat/completions", "http://10.0.0.5:8000/v1/chat/completions/"],
)
def test_backend_url_is_a_full_chat_completions_url(url):
    backend = first_backend(settings({"BACKEND_URL": url}))
    assert backend.base_url == "http://10.0.0.5:8000/v1"
    assert backend.chat_url == "http://10.0.0.5:8000/v1/chat/completions"


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.5:8000/v1", "http://10.0.0.5:8000/v1/completions", "ftp://x/chat/completions"],
)
def test_backend_url_not_ending_in_chat_completions_is_refused(url):
    assert "BACKEND_URL" in config_error({"BACKEND_URL": url})


def test_openai_api_key_is_the_backends_key():
    assert first_backend(settings({"OPENAI_API_KEY": "sk-abc"})).api_key == "sk-abc"


def test_backend_timeout_secs_is_the_read_timeout():
    assert first_backend(settings({"BACKEND_TIMEOUT_SECS": "30"})).read_timeout == 30.0
    assert first_backend(settings({"BACKEND_TIMEOUT_SECS": "2.5"})).read_timeout == 2.5


@pytest.mark.parametrize(
    ("environ", "store_type", "dsn"),
    [
        (
            {"SESSION_STORE_TYPE": "sqlite", "SESSION_STORE_DSN": "/var/lib/gw/r.db"},
            "sqlite",
            "/var/lib/gw/r.db",
        ),
        (
            {"SESSION_STORE_TYPE": "postgres", "SESSION_STORE_DSN": "postgresql://gw@db:5432/gw"},
            "postgres",
            "postgresql://gw@db:5432/gw",
        ),
        ({"SESSION_STORE_TYPE": "memory"}, "memory", None),
    ],
    ids=["sqlite", "postgres", "memory"],
)
def test_session_store_type_and_dsn(environ, store_type, dsn):
    result = settings(environ)
    assert result.store.type == store_type
    if dsn:
        assert result.store.dsn == dsn


@pytest.mark.parametrize(
    ("host_port", "host", "port"),
    [
        ("9000", "127.0.0.1", 9000),
        ("0.0.0.0:9000", "0.0.0.0", 9000),
        (":9000", "127.0.0.1", 9000),
        ("[::1]:9000", "::1", 9000),
    ],
)
def test_host_port(host_port, host, port):
    result = settings({"HOST_PORT": host_port})
    assert (result.server.host, result.server.port) == (host, port)


@pytest.mark.parametrize("level", ["DEBUG", "warning", "ERROR"])
def test_log_level(level):
    assert settings({"LOG_LEVEL": level}).server.log_level.upper() == level.upper()


def test_per_backend_translation_fields_from_the_environment():
    environ = {
        "BACKEND_REASONING_FIELD": "reasoning",
        "BACKEND_MAX_TOKENS_FIELD": "max_completion_tokens",
    }
    backend = first_backend(settings(environ))
    assert (backend.reasoning_field, backend.max_tokens_field) == (
        "reasoning",
        "max_completion_tokens",
    )


def test_backend_ca_bundle_names_the_certificates_an_https_backend_must_chain_to(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert first_backend(settings()).ca_bundle is None
    assert first_backend(settings({"BACKEND_CA_BUNDLE": str(bundle)})).ca_bundle == str(bundle)


# --- YAML and precedence ------------------------------------------------------


YAML_CONFIG = {
    "host_port": "0.0.0.0:7000",
    "auth": "keys",  # backend keys of its own, beyond loopback: clients need keys
    "log_level": "WARNING",
    "store_type": "sqlite",
    "store_dsn": "/srv/gw.db",
    "backends": [
        {
            "name": "vllm",
            "base_url": "http://gpu-1:8000/v1",
            "api_key": "yaml-key",
            "models": ["qwen3"],
            "reasoning_field": "reasoning",
            "read_timeout": 120,
        },
        {"name": "ollama", "base_url": "http://gpu-2:11434/v1"},
    ],
}


def test_yaml_file_sets_everything_it_names(yaml_file):
    result = settings(config_path=yaml_file(YAML_CONFIG))
    assert (result.server.host, result.server.port, result.server.log_level) == (
        "0.0.0.0",
        7000,
        "WARNING",
    )
    assert result.store.dsn == "/srv/gw.db"
    vllm, ollama = result.backends
    assert (vllm.name, vllm.base_url, vllm.api_key, vllm.models) == (
        "vllm",
        "http://gpu-1:8000/v1",
        "yaml-key",
        ("qwen3",),
    )
    assert (vllm.reasoning_field, vllm.read_timeout) == ("reasoning", 120.0)
    assert (ollama.name, ollama.base_url) == ("ollama", "http://gpu-2:11434/v1")


def test_gateway_config_variable_names_the_yaml_file(yaml_file):
    result = settings({"GATEWAY_CONFIG": yaml_file(YAML_CONFIG)})
    assert result.server.port == 7000


def test_environment_wins_over_yaml(yaml_file):
    environ = {
        "GATEWAY_CONFIG": yaml_file(YAML_CONFIG),
        "HOST_PORT": "9000",
        "LOG_LEVEL": "DEBUG",
        "OPENAI_API_ENDPOINT": "http://override:8000/v1",
        "BACKEND_TIMEOUT_SECS": "5",
    }
    result = settings(environ)
    assert (result.server.host, result.server.port, result.server.log_level) == (
        "127.0.0.1",
        9000,
        "DEBUG",
    )
    vllm, ollama = result.backends
    assert (vllm.base_url, vllm.read_timeout) == ("http://override:8000/v1", 5.0)
    assert vllm.api_key == "yaml-key"  # what the environment does not set stays
    assert ollama.base_url == "http://gpu-2:11434/v1"  # the environment sets the first backend


def test_overrides_win_over_the_environment():
    result = load_settings({"host_port": "127.0.0.1:8123"}, environ={"HOST_PORT": "9000"})
    assert result.server.port == 8123


# --- refused ------------------------------------------------------------------


def test_unknown_yaml_key_is_refused_by_name(yaml_file):
    assert "bogus_setting" in config_error(config_path=yaml_file({"bogus_setting": 1}))


def test_unknown_backend_key_is_refused_by_name(yaml_file):
    path = yaml_file({"backends": [{"base_url": "http://x/v1", "timeout": 3}]})
    assert "backends[0].timeout" in config_error(config_path=path)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"workers": "many"}, "workers"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"max_body_bytes": -1}, "max_body_bytes"),
        ({"reject_unsupported_tools": "perhaps"}, "reject_unsupported_tools"),
        ({"backends": []}, "backends"),
        ({"backends": [{"base_url": "localhost:11434"}]}, "backends[0].base_url"),
        ({"backends": [{"read_timeout": "soon"}]}, "backends[0].read_timeout"),
        ({"backends": [{"reasoning_field": "thoughts"}]}, "backends[0].reasoning_field"),
        ({"backends": [{"name": "a"}, {"name": "a"}]}, "backends"),
        ({"backends": [{"ca_bundle": "/nonexistent/ca.pem"}]}, "backends[0].ca_bundle"),
    ],
    ids=lambda value: str(value) if isinstance(value, dict) else None,
)
def test_bad_yaml_values_are_refused_by_key(yaml_file, data, key):
    assert key in config_error(config_path=yaml_file(data))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HOST_PORT", "not-a-port"),
        ("HOST_PORT", "0.0.0.0:70000"),
        ("LOG_LEVEL", "LOUD"),
        ("SESSION_STORE_TYPE", "redis"),
        ("BACKEND_URL", "http://x/v1"),
        ("BACKEND_TIMEOUT_SECS", "soon"),
        ("BACKEND_TIMEOUT_SECS", "0"),
        ("OPENAI_API_ENDPOINT", "localhost:11434/v1"),
        ("BACKEND_REASONING_FIELD", "thoughts"),
        ("BACKEND_MAX_TOKENS_FIELD", "max_new_tokens"),
        ("GATEWAY_WORKERS", "two"),
        ("GATEWAY_WORKER_CONNECTIONS", "0"),
        ("GATEWAY_MAX_BODY_BYTES", "10MB"),
        ("GATEWAY_REJECT_UNSUPPORTED_TOOLS", "perhaps"),
        ("BACKEND_CA_BUNDLE", "/nonexistent/ca.pem"),
        ("GATEWAY_STORE_TTL", "a month"),
        ("GATEWAY_STORE_TTL", "-30d"),
        ("GATEWAY_EVENTS_TTL", "0"),
        ("GATEWAY_EVENTS_TTL", "off"),
        ("GATEWAY_SWEEP_INTERVAL", "5 minutes"),
        ("GATEWAY_BACKGROUND_LEASE", "0s"),
        ("GATEWAY_MIGRATE_ON_START", "later"),
    ],
)
def test_bad_environment_values_are_refused_naming_the_variable(name, value):
    assert name in config_error({name: value})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("15m", 900), ("90s", 90), ("45", 45), ("1.5h", 5400)],
)
def test_durations_read_as_seconds(value, seconds):
    loaded = settings({"GATEWAY_STORE_TTL": value, "GATEWAY_EVENTS_TTL": value})
    assert (loaded.store.ttl, loaded.store.events_ttl) == (seconds, seconds)


def test_retention_and_sweeps_default_and_turn_off():
    defaults = settings()
    assert defaults.store.ttl is None  # kept until deleted, as before
    assert (defaults.store.events_ttl, defaults.store.sweep_interval) == (86400, 300)
    assert (defaults.responses.background_lease, defaults.store.migrate_on_start) == (30, True)
    off = settings({"GATEWAY_STORE_TTL": "off", "GATEWAY_SWEEP_INTERVAL": "0"})
    assert (off.store.ttl, off.store.sweep_interval) == (None, 0)
    assert settings({"GATEWAY_MIGRATE_ON_START": "false"}).store.migrate_on_start is False


def test_postgres_store_needs_a_postgres_url():
    message = config_error({"SESSION_STORE_TYPE": "postgres", "SESSION_STORE_DSN": "/tmp/x.db"})
    assert "SESSION_STORE_DSN" in message


def test_memory_store_is_refused_with_several_workers():
    message = config_error({"SESSION_STORE_TYPE": "memory", "GATEWAY_WORKERS": "2"})
    assert "SESSION_STORE_TYPE" in message


def test_memory_store_is_fine_with_one_worker():
    result = settings({"SESSION_STORE_TYPE": "memory", "GATEWAY_WORKERS": "1"})
    assert (result.store.type, result.server.workers) == ("memory", 1)


@pytest.mark.parametrize(
    "content", ["host_port: [unclosed", "- a list\n- not a mapping\n"], ids=["invalid", "list"]
)
def test_unreadable_yaml_is_refused_naming_gateway_config(yaml_file, content):
    assert "GATEWAY_CONFIG" in config_error(config_path=yaml_file(content))


def test_missing_yaml_file_is_refused_naming_gateway_config(tmp_path):
    assert "GATEWAY_CONFIG" in config_error(config_path=str(tmp_path / "missing.yaml"))


# --- sections, DSNs, backend APIs -----------------------------------------------


def test_yaml_may_write_each_section_as_a_mapping(yaml_file):
    path = yaml_file(
        {
            "server": {"host_port": "0.0.0.0:7100", "workers": 3, "json_logs": True},
            "store": {"dsn": "/srv/gw.db", "ttl": "30d", "sweep_interval": "1h"},
            "responses": {"keepalive_seconds": 5, "background_lease": "45s"},
        }
    )
    result = settings(config_path=path)
    assert (result.server.host, result.server.port, result.server.workers) == ("0.0.0.0", 7100, 3)
    assert result.server.json_logs is True
    assert (result.store.dsn, result.store.ttl, result.store.sweep_interval) == (
        "/srv/gw.db",
        30 * 86400,
        3600,
    )
    assert (result.responses.keepalive_seconds, result.responses.background_lease) == (5, 45)


def test_a_section_key_is_refused_by_its_path(yaml_file):
    assert config_error(config_path=yaml_file({"store": {"tll": "30d"}})).startswith("store.tll")
    message = config_error(config_path=yaml_file({"store": {"ttl": "forever"}}))
    assert message.startswith("store.ttl:")


def test_an_empty_variable_leaves_the_default():
    result = settings({"HOST_PORT": "", "GATEWAY_WORKERS": "", "OPENAI_API_KEY": ""})
    assert (result.server.port, result.server.workers) == (8080, 1)
    assert first_backend(result).api_key is None


def test_a_postgres_dsn_is_read_the_way_peewee_reads_one():
    dsn = "postgresql://gate%2Fway:p%40ss%3Aword@db.internal:6432/gw?sslmode=require&connect_timeout=3"
    result = settings({"SESSION_STORE_DSN": dsn})
    assert result.store.type == "postgres"  # the URL says which, without SESSION_STORE_TYPE
    assert result.store.connect_args() == {
        "database": "gw",
        "user": "gate/way",
        "password": "p@ss:word",
        "host": "db.internal",
        "port": 6432,
        "sslmode": "require",
        "connect_timeout": 3,
    }


@pytest.mark.parametrize(
    ("dsn", "path"),
    [
        ("/var/lib/gw/r.db", "/var/lib/gw/r.db"),
        ("data/r.db", "data/r.db"),
        ("sqlite:///data/r.db", "data/r.db"),
        ("sqlite:////var/lib/gw/r.db", "/var/lib/gw/r.db"),
    ],
)
def test_a_sqlite_dsn_is_a_path_or_a_sqlite_url(dsn, path):
    result = settings({"SESSION_STORE_DSN": dsn})
    assert (result.store.type, result.store.sqlite_path) == ("sqlite", path)


@pytest.mark.parametrize(
    "environ",
    [
        {"SESSION_STORE_TYPE": "sqlite", "SESSION_STORE_DSN": "postgresql://gw@db/gw"},
        {"SESSION_STORE_DSN": "mysql://gw@db/gw"},
        {"SESSION_STORE_DSN": "sqlite:///data/r.db?timeout=3"},
    ],
    ids=["type-disagrees", "unknown-scheme", "sqlite-parameters"],
)
def test_a_dsn_the_store_cannot_use_is_refused_naming_it(environ):
    assert config_error(environ).startswith("SESSION_STORE_DSN:")


def test_a_backend_says_which_api_it_speaks(yaml_file):
    assert first_backend(settings()).api == "chat"
    path = yaml_file({"backends": [{"base_url": "http://x/v1", "kind": "chat"}]})
    assert first_backend(settings(config_path=path)).api == "chat"  # `kind` is another name
    path = yaml_file({"backends": [{"base_url": "http://x/v1", "api": "anthropic"}]})
    assert config_error(config_path=path).startswith("backends[0].api:")


def test_gunicorn_takes_an_empty_variable_as_unset(tmp_path):
    conf = gunicorn_conf({"GATEWAY_WORKERS": "", "GATEWAY_GRACEFUL_TIMEOUT": ""})
    assert conf["workers"] >= 1 and conf["graceful_timeout"] == 60
