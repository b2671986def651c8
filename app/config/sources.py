"""Where settings come from: defaults <- YAML file <- environment <- overrides.

`KEYS` is the one table of every setting outside the backends: its
section and field, the environment variable that sets it, and its flat
name (the YAML key and override the gateway has always documented, e.g.
`store_dsn`). The YAML file may also write a section as a mapping
(`store: {dsn: …}`). The environment's backend variables set the first
backend. An unset variable and an empty one both leave the default. Every
refusal names the key as the operator wrote it: the variable, the flat
name, or the section's path (`store.ttl`, `backends[1].base_url`).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import yaml
from marshmallow import ValidationError

from app.config.schema import BACKEND_SCHEMA, SECTION_SCHEMAS
from app.config.settings import (
    PASSTHROUGH,
    POSTGRES_SCHEMES,
    SQLITE_SCHEMES,
    AuthSettings,
    BackendSettings,
    FilesSettings,
    ResponsesSettings,
    ServerSettings,
    Settings,
    StoreSettings,
    dsn_scheme,
)


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class Key:
    section: str
    field: str
    env: str | None
    flat: str


KEYS = (
    Key("server", "host_port", "HOST_PORT", "host_port"),
    Key("server", "host", None, "host"),
    Key("server", "port", None, "port"),
    Key("server", "workers", "GATEWAY_WORKERS", "workers"),
    Key("server", "worker_connections", "GATEWAY_WORKER_CONNECTIONS", "worker_connections"),
    Key("server", "max_body_bytes", "GATEWAY_MAX_BODY_BYTES", "max_body_bytes"),
    Key("server", "log_level", "LOG_LEVEL", "log_level"),
    Key("server", "json_logs", "GATEWAY_JSON_LOGS", "json_logs"),
    Key("store", "type", "SESSION_STORE_TYPE", "store_type"),
    Key("store", "dsn", "SESSION_STORE_DSN", "store_dsn"),
    Key("store", "migrate_on_start", "GATEWAY_MIGRATE_ON_START", "migrate_on_start"),
    Key("store", "ttl", "GATEWAY_STORE_TTL", "store_ttl"),
    Key("store", "events_ttl", "GATEWAY_EVENTS_TTL", "events_ttl"),
    Key("store", "sweep_interval", "GATEWAY_SWEEP_INTERVAL", "sweep_interval"),
    Key("responses", "keepalive_seconds", "GATEWAY_KEEPALIVE_SECS", "keepalive_seconds"),
    Key("responses", "background_lease", "GATEWAY_BACKGROUND_LEASE", "background_lease"),
    Key(
        "responses",
        "reject_unsupported_tools",
        "GATEWAY_REJECT_UNSUPPORTED_TOOLS",
        "reject_unsupported_tools",
    ),
    Key("responses", "reasoning_secret", "GATEWAY_REASONING_SECRET", "reasoning_secret"),
    Key("auth", "mode", "GATEWAY_AUTH", "auth"),
    Key("auth", "admin_token", "GATEWAY_ADMIN_TOKEN", "admin_token"),
    Key("auth", "secret", "GATEWAY_AUTH_SECRET", "auth_secret"),
    Key("auth", "allow_open_relay", "GATEWAY_ALLOW_OPEN_RELAY", "allow_open_relay"),
    Key("auth", "sharing", "GATEWAY_STORE_SHARING", "store_sharing"),
    Key("auth", "oidc_issuer", "GATEWAY_OIDC_ISSUER", "oidc_issuer"),
    Key("auth", "oidc_audience", "GATEWAY_OIDC_AUDIENCE", "oidc_audience"),
    Key("auth", "oidc_jwks_url", "GATEWAY_OIDC_JWKS_URL", "oidc_jwks_url"),
    Key("auth", "oidc_role_claim", "GATEWAY_OIDC_ROLE_CLAIM", "oidc_role_claim"),
    Key("auth", "oidc_tenant_claim", "GATEWAY_OIDC_TENANT_CLAIM", "oidc_tenant_claim"),
    Key("auth", "oidc_prefixes_claim", "GATEWAY_OIDC_PREFIXES_CLAIM", "oidc_prefixes_claim"),
    Key("auth", "proxy_secret", "GATEWAY_PROXY_SECRET", "proxy_secret"),
    Key("auth", "proxy_cidrs", "GATEWAY_PROXY_CIDRS", "proxy_cidrs"),
    Key("auth", "metrics_tenant_label", "GATEWAY_METRICS_TENANT_LABEL", "metrics_tenant_label"),
    Key("auth", "budget_webhook_url", "GATEWAY_BUDGET_WEBHOOK_URL", "budget_webhook_url"),
    Key("auth", "budget_webhook_secret", "GATEWAY_BUDGET_WEBHOOK_SECRET", "budget_webhook_secret"),
    Key("auth", "redis_url", "GATEWAY_REDIS_URL", "redis_url"),
    Key("files", "base_dir", "FILE_STORE_BASE_DIR", "file_store_base_dir"),
    Key("files", "max_bytes", "GATEWAY_MAX_FILE_BYTES", "max_file_bytes"),
    Key("files", "embedding_model", "EMBEDDING_MODEL", "embedding_model"),
    Key("files", "embedding_endpoint", "EMBEDDING_ENDPOINT", "embedding_endpoint"),
    Key("files", "embedding_api_key", "EMBEDDING_API_KEY", "embedding_api_key"),
)
BY_FLAT = {key.flat: key for key in KEYS}
BY_FIELD = {(key.section, key.field): key for key in KEYS}
SECTIONS = {
    "server": ServerSettings,
    "store": StoreSettings,
    "responses": ResponsesSettings,
    "auth": AuthSettings,
    "files": FilesSettings,
}
ENV_KEYS = {key.env: f"{key.section}.{key.field}" for key in KEYS if key.env}
BACKEND_ENV_KEYS = {
    "OPENAI_API_ENDPOINT": "base_url",
    "BACKEND_URL": "chat_url",
    "OPENAI_API_KEY": "api_key",
    "BACKEND_TIMEOUT_SECS": "read_timeout",
    "BACKEND_REASONING_FIELD": "reasoning_field",
    "BACKEND_MAX_TOKENS_FIELD": "max_tokens_field",
    "BACKEND_CA_BUNDLE": "ca_bundle",
}


class Raw:
    """The values read so far, by section, and the name each was given by."""

    def __init__(self) -> None:
        self.sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        self.backends: list[dict[str, Any]] | None = None
        self.named: dict[str, str] = {}  # "store.ttl" or "backends[0].base_url" -> its source

    def set(self, key: Key, value: Any, named: str) -> None:
        if value is None or value == "":
            return  # unset: the default
        self.sections[key.section][key.field] = value
        self.named[f"{key.section}.{key.field}"] = named

    def take(self, data: Mapping[str, Any]) -> None:
        """Settings from the YAML file or overrides: flat names, sections, `backends`."""
        for name, value in data.items():
            if name == "backends":
                self.backends = _backend_list(value)
            elif name in SECTIONS and isinstance(value, Mapping):
                for field, item in value.items():
                    key = BY_FIELD.get((name, field))
                    if key is None:
                        raise ConfigError(f"{name}.{field}: unknown setting")
                    self.set(key, item, f"{name}.{field}")
            elif name in BY_FLAT:
                self.set(BY_FLAT[name], value, name)
            else:
                raise ConfigError(f"{name}: unknown setting")

    def take_environment(self, environ: Mapping[str, str]) -> None:
        for key in KEYS:
            if key.env and key.env in environ:
                self.set(key, environ[key.env], key.env)
        first = {
            field: environ[name]
            for name, field in BACKEND_ENV_KEYS.items()
            if environ.get(name, "") != ""
        }
        if first:
            self.backends = [*(self.backends or [{}])]
            self.backends[0] = {**self.backends[0], **first}
            for name, field in BACKEND_ENV_KEYS.items():
                if field in first:
                    self.named[f"backends[0].{field}"] = name


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_path: str | None = None,
) -> Settings:
    """Build settings from defaults, the YAML file, the environment and `overrides`."""
    environ = dict(os.environ if environ is None else environ)
    raw = Raw()
    path = config_path or environ.get("GATEWAY_CONFIG")
    if path:
        raw.take(_read_yaml(path))
    raw.take_environment(environ)
    raw.take(overrides or {})
    sections = {name: _section(raw, name) for name in SECTIONS}
    if "store.type" not in raw.named and dsn_scheme(sections["store"].dsn) in POSTGRES_SCHEMES:
        sections["store"] = replace(sections["store"], type="postgres")  # the URL says which
    settings = Settings(**sections, backends=_backends(raw))
    settings = replace(
        settings, backends=tuple(_sized_pool(b, settings) for b in settings.backends)
    )
    _check_store(settings, raw)
    problem = open_relay(settings, [settings.server.host])
    if problem:
        raise ConfigError(problem)
    return settings


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


def _section(raw: Raw, name: str) -> Any:
    try:
        values = SECTION_SCHEMAS[name].load(raw.sections[name])
    except ValidationError as exc:
        field, message = _first(exc.messages)
        raise ConfigError(f"{raw.named.get(f'{name}.{field}', field)}: {message}") from None
    return SECTIONS[name](**values)


def _backend_list(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise ConfigError("backends: expected a non-empty list")
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ConfigError(f"backends[{index}]: expected a mapping")
    return [dict(item) for item in value]


def _backends(raw: Raw) -> tuple[BackendSettings, ...]:
    if raw.backends is None:
        return (BackendSettings(),)
    backends = []
    for index, item in enumerate(raw.backends):
        given = {key: value for key, value in item.items() if value not in (None, "")}
        try:
            values = BACKEND_SCHEMA.load(given)
        except ValidationError as exc:
            field, message = _first(exc.messages)
            named = raw.named.get(f"backends[{index}].{field}", f"backends[{index}].{field}")
            if message == "Unknown field.":
                message = "unknown setting"
            raise ConfigError(f"{named}: {message}") from None
        values.setdefault("name", "default" if index == 0 else f"backend{index}")
        backends.append(BackendSettings(**values))
    names = [backend.name for backend in backends]
    if len(set(names)) != len(names):
        raise ConfigError("backends: names must be unique")
    return tuple(backends)


def _first(messages: Any) -> tuple[str, str]:
    """The first field marshmallow refused, and its message."""
    field, problem = next(iter(messages.items()))
    while isinstance(problem, dict):
        problem = next(iter(problem.values()))
    message = problem[0] if isinstance(problem, list) else str(problem)
    return str(field), "unknown setting" if message == "Unknown field." else message


def _sized_pool(backend: BackendSettings, settings: Settings) -> BackendSettings:
    if backend.pool_size is not None:
        return backend
    return replace(backend, pool_size=settings.server.worker_connections)


def _check_store(settings: Settings, raw: Raw) -> None:
    store, workers = settings.store, settings.server.workers
    named_type = raw.named.get("store.type", "store_type")
    named_dsn = raw.named.get("store.dsn", "store_dsn")
    if store.type == "memory":
        if workers > 1:
            raise ConfigError(
                f"{named_type}: the memory store is private to one process; "
                f"use sqlite or postgres with {workers} workers"
            )
        return
    scheme = dsn_scheme(store.dsn)
    if store.type == "postgres" and scheme not in POSTGRES_SCHEMES:
        raise ConfigError(f"{named_dsn}: postgres needs a postgresql:// URL")
    if store.type == "sqlite" and scheme not in SQLITE_SCHEMES:
        raise ConfigError(
            f"{named_dsn}: a {scheme}:// URL is not a SQLite file; set {named_type} "
            "to match, or give a file path"
        )
    if scheme in SQLITE_SCHEMES and "?" in store.dsn:
        raise ConfigError(f"{named_dsn}: a SQLite file takes no parameters")


def open_relay(settings: Settings, hosts: list[str]) -> str | None:
    """Why serving on `hosts` would lend the backends' own keys to anyone (None: it would not).

    In passthrough mode a caller needs no key of the gateway's; a backend
    with its own key then serves whoever reaches the gateway. That is fine
    on loopback, not beyond it. gunicorn.conf.py asks again with the
    addresses gunicorn really binds (`GUNICORN_CMD_ARGS` may change them).
    """
    auth = settings.auth
    if auth.mode != PASSTHROUGH or auth.allow_open_relay:
        return None
    keyed = [backend.name for backend in settings.backends if backend.api_key]
    exposed = [host for host in hosts if not _is_loopback(host)]
    if not keyed or not exposed:
        return None
    return (
        f"GATEWAY_AUTH: passthrough with backend keys of its own ({', '.join(keyed)}) "
        f"while listening on {exposed[0]} lends those keys to anyone who reaches it; "
        "set GATEWAY_AUTH=keys, listen on 127.0.0.1, or set GATEWAY_ALLOW_OPEN_RELAY=true "
        "if an authenticating proxy is in front"
    )


def _is_loopback(host: str) -> bool:
    """A loopback address or name (a unix socket counts: it is not on the network)."""
    if host.startswith("unix:") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
