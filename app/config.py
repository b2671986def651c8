"""Settings: defaults <- YAML file <- environment, validated once at start.

Every tunable of the gateway lives in `Settings`; nothing else reads the
environment. Invalid configuration raises `ConfigError` naming the key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields, replace
from typing import Any

import yaml

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MAX_PORT = 65535
DEFAULT_SQLITE_PATH = "data/responses.db"
DEFAULT_BACKEND_URL = "http://127.0.0.1:11434/v1"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 600.0
DEFAULT_WORKER_CONNECTIONS = 1000  # gunicorn's default for a gevent worker
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_KEEPALIVE_SECONDS = 15.0
DEFAULT_EVENTS_TTL = 24 * 3600.0
DEFAULT_SWEEP_INTERVAL = 300.0
DEFAULT_BACKGROUND_LEASE = 30.0
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
OFF_WORDS = ("", "0", "off", "none", "never")
CHAT_COMPLETIONS_SUFFIX = "/chat/completions"
STORE_TYPES = ("sqlite", "postgres", "memory")
REASONING_FIELDS = ("reasoning_content", "reasoning")
MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class BackendSettings:
    """One upstream model server that speaks Chat Completions."""

    name: str = "default"
    base_url: str = DEFAULT_BACKEND_URL
    api_key: str | None = None
    models: tuple[str, ...] = ()
    reasoning_field: str = "reasoning_content"
    max_tokens_field: str = "max_tokens"
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    # Idle connections kept open to the backend; by default as many as a
    # worker may serve at once (`worker_connections`), so that a worker
    # holding that many streams never closes one to open another.
    pool_size: int | None = None
    # CA certificates (a PEM file or a directory) that an https backend's
    # certificate must chain to; without it, the certifi bundle.
    ca_bundle: str | None = None
    # Extra Chat fields that switch thinking off when `reasoning.effort` is
    # "none", e.g. {"chat_template_kwargs": {"enable_thinking": false}} for vLLM.
    thinking_off: tuple[tuple[str, Any], ...] = ()

    @property
    def chat_url(self) -> str:
        return self.base_url + CHAT_COMPLETIONS_SUFFIX

    def serves(self, model: str) -> bool:
        """Tell whether this backend is configured for `model` (no list: every model)."""
        return not self.models or model in self.models


@dataclass(frozen=True)
class Settings:
    """Every setting of the gateway, with its default."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    log_level: str = "INFO"
    store_type: str = "sqlite"
    store_dsn: str = DEFAULT_SQLITE_PATH
    workers: int = 1
    worker_connections: int = DEFAULT_WORKER_CONNECTIONS
    backends: tuple[BackendSettings, ...] = (BackendSettings(),)
    reject_unsupported_tools: bool = False
    json_logs: bool = False
    reasoning_secret: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS
    # Apply pending schema migrations at start (off: `gateway migrate` by hand).
    migrate_on_start: bool = True
    # Stored responses and idle conversations older than this are gone (None: kept).
    store_ttl: float | None = None
    # A background response's stream events are kept this long after it ended.
    events_ttl: float = DEFAULT_EVENTS_TTL
    # How often a worker sweeps the store (0: never; `gateway sweep` does it).
    sweep_interval: float = DEFAULT_SWEEP_INTERVAL
    # How long a background runner's lease lasts before it must renew it.
    background_lease: float = DEFAULT_BACKGROUND_LEASE


ENV_KEYS = {
    "HOST_PORT": "host_port",
    "LOG_LEVEL": "log_level",
    "SESSION_STORE_TYPE": "store_type",
    "SESSION_STORE_DSN": "store_dsn",
    "GATEWAY_WORKERS": "workers",
    "GATEWAY_WORKER_CONNECTIONS": "worker_connections",
    "GATEWAY_REJECT_UNSUPPORTED_TOOLS": "reject_unsupported_tools",
    "GATEWAY_JSON_LOGS": "json_logs",
    "GATEWAY_REASONING_SECRET": "reasoning_secret",
    "GATEWAY_MAX_BODY_BYTES": "max_body_bytes",
    "GATEWAY_KEEPALIVE_SECS": "keepalive_seconds",
    "GATEWAY_MIGRATE_ON_START": "migrate_on_start",
    "GATEWAY_STORE_TTL": "store_ttl",
    "GATEWAY_EVENTS_TTL": "events_ttl",
    "GATEWAY_SWEEP_INTERVAL": "sweep_interval",
    "GATEWAY_BACKGROUND_LEASE": "background_lease",
}
BACKEND_ENV_KEYS = {
    "OPENAI_API_ENDPOINT": "base_url",
    "BACKEND_URL": "chat_url",
    "OPENAI_API_KEY": "api_key",
    "BACKEND_TIMEOUT_SECS": "read_timeout",
    "BACKEND_REASONING_FIELD": "reasoning_field",
    "BACKEND_MAX_TOKENS_FIELD": "max_tokens_field",
    "BACKEND_CA_BUNDLE": "ca_bundle",
}


def load_settings(
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    config_path: str | None = None,
) -> Settings:
    """Build settings from defaults, the YAML file, the environment and `overrides`."""
    environ = dict(os.environ if environ is None else environ)
    raw: dict[str, Any] = {}
    path = config_path or environ.get("GATEWAY_CONFIG")
    if path:
        raw.update(_read_yaml(path))
    raw.update({key: environ[name] for name, key in ENV_KEYS.items() if name in environ})
    backend_env = {key: environ[name] for name, key in BACKEND_ENV_KEYS.items() if name in environ}
    if backend_env:
        raw["backends"] = _merge_first_backend(raw.get("backends"), backend_env)
    raw.update(overrides or {})
    try:
        return _validate(raw)
    except ConfigError as exc:
        raise _named_for_operator(exc, environ) from None


def _named_for_operator(error: ConfigError, environ: dict[str, str]) -> ConfigError:
    """Name the environment variable the operator set, rather than our internal key."""
    sources = {key: name for name, key in ENV_KEYS.items() if name in environ}
    for name, key in BACKEND_ENV_KEYS.items():
        if name in environ:
            sources[f"backends[0].{'base_url' if key == 'chat_url' else key}"] = name
    key = str(error).split(":", 1)[0]
    if key in sources and sources[key] != key:
        return ConfigError(f"{sources[key]}: {str(error).split(':', 1)[1].strip()}")
    return error


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise ConfigError(f"GATEWAY_CONFIG: cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"GATEWAY_CONFIG: {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"GATEWAY_CONFIG: {path} must hold a mapping")
    return data


def _merge_first_backend(backends: Any, backend_env: dict[str, str]) -> list[dict[str, Any]]:
    """Environment variables configure the first (or only) backend."""
    listed = [dict(item) for item in backends] if isinstance(backends, list) else [{}]
    listed[0].update(backend_env)
    return listed


def _validate(raw: dict[str, Any]) -> Settings:
    known = {f.name for f in fields(Settings)} | {"host_port"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown setting")
    values: dict[str, Any] = {}
    if raw.get("host_port") not in (None, ""):
        values["host"], values["port"] = _parse_host_port(str(raw["host_port"]))
    for name in ("host", "log_level", "store_type", "store_dsn", "reasoning_secret"):
        if raw.get(name) not in (None, ""):
            values[name] = str(raw[name])
    if "port" in raw:
        values["port"] = _port("port", raw["port"])
    for name in ("workers", "worker_connections", "max_body_bytes"):
        if name in raw:
            values[name] = _positive_int(name, raw[name])
    if "keepalive_seconds" in raw:
        values["keepalive_seconds"] = _positive_float("keepalive_seconds", raw["keepalive_seconds"])
    for name in ("reject_unsupported_tools", "json_logs", "migrate_on_start"):
        if name in raw:
            values[name] = _boolean(name, raw[name])
    if "store_ttl" in raw:
        values["store_ttl"] = _duration("store_ttl", raw["store_ttl"], off=True)
    if "sweep_interval" in raw:
        values["sweep_interval"] = _duration("sweep_interval", raw["sweep_interval"], off=True) or 0
    for name in ("events_ttl", "background_lease"):
        if name in raw:
            values[name] = _duration(name, raw[name])
    if "backends" in raw:
        values["backends"] = _backends(raw["backends"])
    settings = replace(Settings(), **values)
    settings = replace(
        settings, backends=tuple(_sized_pool(b, settings) for b in settings.backends)
    )
    _check_store(settings)
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"LOG_LEVEL: unknown level {settings.log_level!r}")
    return settings


def _sized_pool(backend: BackendSettings, settings: Settings) -> BackendSettings:
    if backend.pool_size is not None:
        return backend
    return replace(backend, pool_size=settings.worker_connections)


def _parse_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host.strip("[]") or DEFAULT_HOST), _port("HOST_PORT", port)


def _port(name: str, value: Any) -> int:
    port = _positive_int(name, value)
    if port > MAX_PORT:
        raise ConfigError(f"{name}: must be a TCP port (1 to {MAX_PORT}), got {port}")
    return port


def _positive_int(name: str, value: Any) -> int:
    return _positive(name, value, int, "a whole number")


def _positive_float(name: str, value: Any) -> float:
    return _positive(name, value, float, "a number")


def _positive(name: str, value: Any, kind: type, described: str) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected {described}, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name}: must be greater than 0, got {number}")
    return number


def _duration(name: str, value: Any, off: bool = False) -> float | None:
    """Seconds, from a number or `90s`, `15m`, `12h`, `30d`; `off` allows 0/off (None)."""
    text = str(value).strip().lower()
    if off and text in OFF_WORDS:
        return None
    match = DURATION_PATTERN.fullmatch(text)
    seconds = float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"] if match else 0
    if seconds <= 0:
        allowed = ", or off" if off else ""
        raise ConfigError(
            f"{name}: expected a duration such as 90s, 15m, 12h or 30d{allowed}, got {value!r}"
        )
    return seconds


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: expected true or false, got {value!r}")


def _backends(value: Any) -> tuple[BackendSettings, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("backends: expected a non-empty list")
    backends = tuple(_backend(index, item) for index, item in enumerate(value))
    names = [backend.name for backend in backends]
    if len(set(names)) != len(names):
        raise ConfigError("backends: names must be unique")
    return backends


def _backend(index: int, item: Any) -> BackendSettings:
    where = f"backends[{index}]"
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a mapping")
    item = dict(item)
    known = {f.name for f in fields(BackendSettings)} | {"chat_url"}
    unknown = sorted(set(item) - known)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown setting")
    if item.get("chat_url"):
        chat_url = str(item.pop("chat_url")).rstrip("/")
        if not chat_url.endswith(CHAT_COMPLETIONS_SUFFIX):
            raise ConfigError(f"BACKEND_URL: must end with {CHAT_COMPLETIONS_SUFFIX}")
        item["base_url"] = chat_url[: -len(CHAT_COMPLETIONS_SUFFIX)]
    item.pop("chat_url", None)
    base_url = str(item.get("base_url", DEFAULT_BACKEND_URL)).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.base_url: must be an http(s) URL, got {base_url!r}")
    values: dict[str, Any] = {"base_url": base_url}
    values["name"] = str(item.get("name") or ("default" if index == 0 else f"backend{index}"))
    values["api_key"] = str(item["api_key"]) if item.get("api_key") else None
    values["models"] = tuple(str(model) for model in item.get("models") or ())
    for key, allowed in (
        ("reasoning_field", REASONING_FIELDS),
        ("max_tokens_field", MAX_TOKENS_FIELDS),
    ):
        if key in item:
            if item[key] not in allowed:
                raise ConfigError(f"{where}.{key}: expected one of {', '.join(allowed)}")
            values[key] = item[key]
    for key in ("connect_timeout", "read_timeout"):
        if key in item:
            values[key] = _positive_float(f"{where}.{key}", item[key])
    if "pool_size" in item:
        values["pool_size"] = _positive_int(f"{where}.pool_size", item["pool_size"])
    if item.get("ca_bundle"):
        values["ca_bundle"] = str(item["ca_bundle"])
        if not os.path.exists(values["ca_bundle"]):
            raise ConfigError(f"{where}.ca_bundle: no such file or directory")
    if item.get("thinking_off") is not None:
        if not isinstance(item["thinking_off"], dict):
            raise ConfigError(f"{where}.thinking_off: expected a mapping of Chat fields")
        values["thinking_off"] = tuple(item["thinking_off"].items())
    return BackendSettings(**values)


def _check_store(settings: Settings) -> None:
    if settings.store_type not in STORE_TYPES:
        raise ConfigError(f"SESSION_STORE_TYPE: expected one of {', '.join(STORE_TYPES)}")
    if settings.store_type == "memory" and settings.workers > 1:
        raise ConfigError(
            "SESSION_STORE_TYPE: the memory store is private to one process; "
            f"use sqlite or postgres with {settings.workers} workers"
        )
    if settings.store_type == "postgres" and not settings.store_dsn.startswith(
        ("postgres://", "postgresql://")
    ):
        raise ConfigError("SESSION_STORE_DSN: postgres needs a postgresql:// URL")
