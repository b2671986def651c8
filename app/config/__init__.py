"""Settings: defaults <- YAML file <- environment <- overrides, validated once at start.

Every tunable of the gateway lives in `Settings`, one frozen dataclass per
section (app/config/settings.py); nothing else reads the environment.
app/config/sources.py reads and merges the sources, app/config/schema.py
validates each section with marshmallow; invalid configuration raises
`ConfigError` naming the key. Importing this package imports no more than
YAML and marshmallow: gunicorn's master reads the settings before any
worker patches the standard library.
"""

from app.config.settings import (
    CHAT_COMPLETIONS_SUFFIX,
    DEFAULT_BACKGROUND_LEASE,
    DEFAULT_EVENTS_TTL,
    DEFAULT_KEEPALIVE_SECONDS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_SWEEP_INTERVAL,
    AuthSettings,
    BackendSettings,
    FilesSettings,
    ResponsesSettings,
    ServerSettings,
    Settings,
    StoreSettings,
)
from app.config.sources import (
    BACKEND_ENV_KEYS,
    ENV_KEYS,
    KEYS,
    ConfigError,
    load_settings,
    open_relay,
)

__all__ = [
    "BACKEND_ENV_KEYS",
    "CHAT_COMPLETIONS_SUFFIX",
    "DEFAULT_BACKGROUND_LEASE",
    "DEFAULT_EVENTS_TTL",
    "DEFAULT_KEEPALIVE_SECONDS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_SWEEP_INTERVAL",
    "ENV_KEYS",
    "KEYS",
    "AuthSettings",
    "BackendSettings",
    "ConfigError",
    "FilesSettings",
    "ResponsesSettings",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "load_settings",
    "open_relay",
]
