"""Validation of the settings: one marshmallow schema per section, as requests are validated.

A value arrives as the YAML file typed it or as the environment's text:
each field takes both (`"30"` and `30`, `"true"` and `true`). A schema
loads a section's raw values into the keyword arguments of its dataclass;
what it refuses comes back as marshmallow's messages, which
app/config/sources.py turns into one `ConfigError` naming the key as the
operator wrote it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from app.config.settings import (
    CHAT_COMPLETIONS_SUFFIX,
    DEFAULT_BACKEND_URL,
    DEFAULT_HOST,
    KEYS,
    PASSTHROUGH,
    SHARE_KEY,
    SHARE_PROJECT,
)

MAX_PORT = 65535
STORE_TYPES = ("sqlite", "postgres", "memory")
BACKEND_APIS = ("chat",)
REASONING_FIELDS = ("reasoning_content", "reasoning")
MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
OFF_WORDS = ("", "0", "off", "none", "never")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


class Positive(validate.Range):
    """Greater than 0."""

    def __init__(self) -> None:
        super().__init__(min=0, min_inclusive=False, error="must be greater than 0, got {input}")


class Count(fields.Integer):
    """A whole number above 0 (`"4"` from the environment, `4` from YAML)."""

    default_error_messages = {"invalid": "expected a whole number"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=Positive(), **kwargs)


class Seconds(fields.Float):
    """A number of seconds above 0."""

    default_error_messages = {"invalid": "expected a number"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=Positive(), **kwargs)


class Switch(fields.Field):
    """true or false (also 1/0, yes/no, on/off)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
        raise ValidationError(f"expected true or false, got {value!r}")


class Duration(fields.Field):
    """Seconds, from a number or `90s`, `15m`, `12h`, `30d`; with `off`, also 0/off (None)."""

    def __init__(self, off: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.off = off

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> float | None:
        text = str(value).strip().lower()
        if self.off and text in OFF_WORDS:
            return None
        match = DURATION_PATTERN.fullmatch(text)
        seconds = float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"] if match else 0
        if seconds <= 0:
            also = ", or off" if self.off else ""
            raise ValidationError(
                f"expected a duration such as 90s, 15m, 12h or 30d{also}, got {value!r}"
            )
        return seconds


class Port(fields.Integer):
    default_error_messages = {"invalid": "expected a whole number"}

    def __init__(self, **kwargs: Any) -> None:
        error = f"must be a TCP port (1 to {MAX_PORT}), got {{input}}"
        super().__init__(validate=validate.Range(1, MAX_PORT, error=error), **kwargs)


class HostPort(fields.Field):
    """`PORT` or `HOST:PORT` (`[::1]:PORT` for IPv6): a (host, port) pair."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> tuple[str, int]:
        host, _, port = str(value).rpartition(":")
        return (host.strip("[]") or DEFAULT_HOST), Port().deserialize(port)


class Text(fields.String):
    """A string (an empty one never gets here: unset and empty both mean the default)."""


class LogLevel(fields.String):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        level = str(value)
        if level.upper() not in LOG_LEVELS:
            raise ValidationError(f"unknown level {level!r}")
        return level


class ServerSchema(Schema):
    class Meta:
        unknown = RAISE

    host_port = HostPort()
    host = Text()
    port = Port()
    workers = Count()
    worker_connections = Count()
    max_body_bytes = Count()
    log_level = LogLevel()
    json_logs = Switch()

    @post_load
    def split_host_port(self, values: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if "host_port" in values:
            values["host"], values["port"] = values.pop("host_port")
        return values


class StoreSchema(Schema):
    class Meta:
        unknown = RAISE

    type = Text(validate=validate.OneOf(STORE_TYPES, error="expected one of {choices}"))
    dsn = Text()
    migrate_on_start = Switch()
    ttl = Duration(off=True)
    events_ttl = Duration()
    sweep_interval = Duration(off=True)

    @post_load
    def interval_off(self, values: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if "sweep_interval" in values:
            values["sweep_interval"] = values["sweep_interval"] or 0
        return values


class ResponsesSchema(Schema):
    class Meta:
        unknown = RAISE

    keepalive_seconds = Seconds()
    background_lease = Duration()
    reject_unsupported_tools = Switch()
    reasoning_secret = Text()


class Cidrs(fields.Field):
    """Networks, as a list or comma-separated: `10.0.0.0/8, 127.0.0.1`."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ValidationError("expected networks such as 10.0.0.0/8, comma-separated")
        networks = []
        for item in items:
            try:
                networks.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
            except ValueError:
                raise ValidationError(f"not a network: {item!r}") from None
        return tuple(networks)


class ExistingPath(fields.String):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        path = super()._deserialize(value, attr, data, **kwargs)
        if not os.path.exists(path):
            raise ValidationError("no such file or directory")
        return path


class HttpUrl(fields.String):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        url = super()._deserialize(value, attr, data, **kwargs).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValidationError(f"must be an http(s) URL, got {url!r}")
        return url


class AuthSchema(Schema):
    class Meta:
        unknown = RAISE

    mode = Text(validate=validate.OneOf((PASSTHROUGH, KEYS), error="expected one of {choices}"))
    admin_token = Text(validate=validate.Length(min=16, error="must be 16 characters or more"))
    secret = Text(validate=validate.Length(min=16, error="must be 16 characters or more"))
    allow_open_relay = Switch()
    sharing = Text(
        validate=validate.OneOf((SHARE_PROJECT, SHARE_KEY), error="expected one of {choices}")
    )
    oidc_issuer = HttpUrl()
    oidc_audience = Text(validate=validate.Length(min=1))
    oidc_jwks_url = HttpUrl()
    oidc_role_claim = Text(validate=validate.Length(min=1))
    oidc_tenant_claim = Text(validate=validate.Length(min=1))
    oidc_prefixes_claim = Text(validate=validate.Length(min=1))
    proxy_secret = Text(validate=validate.Length(min=16, error="must be 16 characters or more"))
    proxy_cidrs = Cidrs()
    metrics_tenant_label = Switch()
    budget_webhook_url = HttpUrl()
    budget_webhook_secret = Text(
        validate=validate.Length(min=16, error="must be 16 characters or more")
    )
    redis_url = Text(
        validate=validate.Regexp(
            r"^(redis|rediss|unix)://", error="expected a redis://, rediss:// or unix:// URL"
        )
    )

    @validates_schema
    def _oidc_whole(self, data: dict[str, Any], **kwargs: Any) -> None:
        if bool(data.get("oidc_issuer")) != bool(data.get("oidc_audience")):
            raise ValidationError("set oidc_issuer and oidc_audience together", "oidc_audience")
        if data.get("budget_webhook_url") and not data.get("budget_webhook_secret"):
            raise ValidationError(
                "a budget webhook needs budget_webhook_secret (its POSTs are signed)",
                "budget_webhook_secret",
            )
        if bool(data.get("proxy_secret")) != bool(data.get("proxy_cidrs")):
            raise ValidationError(
                "set proxy_secret and proxy_cidrs (the proxy's addresses) together", "proxy_cidrs"
            )


class ChatUrl(fields.String):
    """A full `…/chat/completions` URL, read as its base URL."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        url = super()._deserialize(value, attr, data, **kwargs).rstrip("/")
        if not url.endswith(CHAT_COMPLETIONS_SUFFIX):
            raise ValidationError(f"must end with {CHAT_COMPLETIONS_SUFFIX}")
        return HttpUrl().deserialize(url[: -len(CHAT_COMPLETIONS_SUFFIX)])


class ChatFields(fields.Dict):
    """Extra Chat fields: a mapping, kept as (name, value) pairs."""

    default_error_messages = {"invalid": "expected a mapping of Chat fields"}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        return tuple(super()._deserialize(value, attr, data, **kwargs).items())


class BackendSchema(Schema):
    class Meta:
        unknown = RAISE

    name = Text()
    api = Text(validate=validate.OneOf(BACKEND_APIS, error="expected one of {choices}"))
    kind = Text(validate=validate.OneOf(BACKEND_APIS, error="expected one of {choices}"))
    base_url = HttpUrl()
    chat_url = ChatUrl()
    api_key = Text()
    models = fields.List(fields.String(), error_messages={"invalid": "expected a list"})
    reasoning_field = Text(
        validate=validate.OneOf(REASONING_FIELDS, error="expected one of {choices}")
    )
    max_tokens_field = Text(
        validate=validate.OneOf(MAX_TOKENS_FIELDS, error="expected one of {choices}")
    )
    connect_timeout = Seconds()
    read_timeout = Seconds()
    pool_size = Count()
    ca_bundle = ExistingPath()
    thinking_off = ChatFields(allow_none=True)

    @post_load
    def settle(self, values: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """`kind` is another name for `api`; `chat_url` names the base URL by its endpoint."""
        if "kind" in values:
            values.setdefault("api", values.pop("kind"))
        if "chat_url" in values:
            values["base_url"] = values.pop("chat_url")
        values.setdefault("base_url", DEFAULT_BACKEND_URL)
        values["models"] = tuple(values.get("models") or ())
        if values.get("thinking_off") is None:
            values.pop("thinking_off", None)
        return values


class FilesSchema(Schema):
    class Meta:
        unknown = RAISE

    base_dir = Text()
    max_bytes = Count()
    embedding_model = Text()
    embedding_endpoint = HttpUrl()
    embedding_api_key = Text()


SECTION_SCHEMAS: dict[str, Schema] = {
    "server": ServerSchema(),
    "store": StoreSchema(),
    "responses": ResponsesSchema(),
    "auth": AuthSchema(),
    "files": FilesSchema(),
}
BACKEND_SCHEMA = BackendSchema()
