"""The settings, one frozen dataclass per section, each field with its default.

`Settings` holds the sections: `server` (listening, workers, logs), `store`
(the database, its schema, retention), `responses` (how responses are
run), `auth` (who may call, and how callers are told apart) and
`files` (uploaded files' bytes) and `backends` (one `BackendSettings` per
model server). Nothing
here reads the environment or a file: app/config/sources.py does, and
app/config/schema.py validates what it read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
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
DEFAULT_FILES_DIR = "data/files"
DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024  # OpenAI's own limit for one file
CHAT_COMPLETIONS_SUFFIX = "/chat/completions"
SQLITE_SCHEMES = ("sqlite",)
POSTGRES_SCHEMES = ("postgres", "postgresql")
PASSTHROUGH, KEYS = "passthrough", "keys"
SHARE_PROJECT, SHARE_KEY = "project", "key"


@dataclass(frozen=True)
class ServerSettings:
    """Where the gateway listens, how many workers serve, and how it logs."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int = 1
    worker_connections: int = DEFAULT_WORKER_CONNECTIONS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_level: str = "INFO"
    json_logs: bool = False


@dataclass(frozen=True)
class StoreSettings:
    """The database, its schema, and how long what it holds is kept."""

    type: str = "sqlite"  # sqlite, postgres or memory (one worker only)
    dsn: str = DEFAULT_SQLITE_PATH
    # Apply pending schema migrations at start (off: `gateway migrate` by hand).
    migrate_on_start: bool = True
    # Stored responses and idle conversations older than this are gone (None: kept).
    ttl: float | None = None
    # A background response's stream events are kept this long after it ended.
    events_ttl: float = DEFAULT_EVENTS_TTL
    # How often a worker sweeps the store (0: never; `gateway sweep` does it).
    sweep_interval: float = DEFAULT_SWEEP_INTERVAL

    @property
    def sqlite_path(self) -> str:
        """The SQLite file (`dsn` is a path, or a `sqlite:///path` URL)."""
        if "://" not in self.dsn:
            return self.dsn
        return urlsplit(self.dsn).path[1:]  # sqlite:///relative, sqlite:////absolute

    def connect_args(self) -> dict[str, Any]:
        """PostgreSQL's connection arguments from `dsn`, the way peewee's db_url reads a URL:
        user and password unquoted (`%40` is `@`), query parameters (`sslmode`,
        `connect_timeout`, …) passed on to the driver."""
        # peewee is the workers' to import: gunicorn's master reads these settings too.
        from playhouse.db_url import parse

        return parse(self.dsn, unquote_password=True, unquote_user=True)


def dsn_scheme(dsn: str) -> str:
    """`postgresql` for a PostgreSQL URL, `sqlite` for a SQLite URL or a plain path."""
    return urlsplit(dsn).scheme.lower() if "://" in dsn else "sqlite"


@dataclass(frozen=True)
class ResponsesSettings:
    """How responses are run: keep-alives, background leases, tools, sealed reasoning."""

    keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS
    # How long a background runner's lease lasts before it must renew it.
    background_lease: float = DEFAULT_BACKGROUND_LEASE
    reject_unsupported_tools: bool = False
    # Key that seals `encrypted_content` reasoning (None: one kept in the store).
    reasoning_secret: str | None = None


@dataclass(frozen=True)
class FilesSettings:
    """Where uploaded files' bytes are kept (their metadata is in the store), their cap, and
    the embeddings model vector stores use."""

    # Every worker of every node must see the same directory (one disk, or a shared mount).
    base_dir: str = DEFAULT_FILES_DIR
    max_bytes: int = DEFAULT_MAX_FILE_BYTES
    # Vector stores embed their chunks with this model (None: they search by keywords),
    # at this OpenAI-compatible base URL (None: the first backend's), with this key.
    embedding_model: str | None = None
    embedding_endpoint: str | None = None
    embedding_api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AuthSettings:
    """Who may call the gateway, and whose stored objects each caller sees."""

    # passthrough: the client's key goes on to the backend, and tells its
    # stored objects apart; keys: clients present the gateway's virtual keys.
    mode: str = PASSTHROUGH
    # A super-admin token for /v1/gateway (until admin tokens are made there).
    admin_token: str | None = field(default=None, repr=False)
    # The server secret behind key hashes, passthrough owners and idempotent
    # replays (None: one kept in the store, beside the hashes it protects).
    secret: str | None = field(default=None, repr=False)
    # Serve beyond loopback with backend keys and no client auth (an auth proxy in front).
    allow_open_relay: bool = False
    # Within a tenant, a key reads its project's stored objects too (or only its own).
    sharing: str = SHARE_PROJECT
    # Admins signed in elsewhere: OIDC ID/access tokens (JWT) of this issuer and audience,
    # their keys from its JWKS (discovered unless given), role and scope from their claims.
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_role_claim: str = "gateway_role"
    oidc_tenant_claim: str = "gateway_tenant"
    oidc_prefixes_claim: str = "gateway_key_prefixes"
    # A proxy that signed the admin in: its shared secret, and the addresses it calls from.
    proxy_secret: str | None = field(default=None, repr=False)
    proxy_cidrs: tuple[str, ...] = ()
    # Where a budget's soft limit and 50/80/100 % are told (a signed POST, once a period).
    # /v1/gateway/metrics labels usage by tenant (one series per tenant and model).
    metrics_tenant_label: bool = False
    budget_webhook_url: str | None = None
    budget_webhook_secret: str | None = field(default=None, repr=False)
    # Keys' rate limits (RPM, TPM, parallel) counted in this Redis, shared by every
    # gateway on it (None: in the database). Budgets and the ledger stay in the database.
    redis_url: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class BackendSettings:
    """One upstream model server, and the API it speaks (`api`; only `chat` so far)."""

    name: str = "default"
    api: str = "chat"
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
    """Every setting of the gateway, by section."""

    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    responses: ResponsesSettings = ResponsesSettings()
    auth: AuthSettings = AuthSettings()
    files: FilesSettings = FilesSettings()
    backends: tuple[BackendSettings, ...] = (BackendSettings(),)
