"""What every use case is given: the gateway's parts (`ServiceContext`) and the caller.

`ServiceContext` is made once at start by `init_app` from the settings and
the parts the earlier extensions made (the backends); the reasoning
sealing key is read (or made) here, once, so no stream touches the store
for it. `RequestContext` is made per request by whoever received it (the
HTTP layer, an ext_proc process): the principal it acts as.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.auth.principal import Owner, Principal
from app.backends import Backends
from app.backends.embeddings import Embeddings, embeddings_for
from app.config import Settings
from app.services.alerts import Webhook
from app.services.ingest import Ingester
from app.store import db, responses
from app.store.blobs import BlobStore
from app.store.counters import RedisCounters

REASONING_SECRET = "reasoning"


@dataclass(frozen=True)
class ServiceContext:
    """The running gateway's parts the use cases need."""

    backends: Backends
    reasoning_secret: bytes = field(repr=False)
    blobs: BlobStore  # uploaded files' bytes
    ingester: Ingester  # this worker's, for files added to vector stores
    embeddings: Embeddings | None = None  # vector stores search by meaning with it
    reject_unsupported_tools: bool = False
    keepalive_seconds: float = 15.0
    background_lease: float = 30.0
    budget_webhook: Webhook | None = None
    counters: RedisCounters | None = None  # keys' rate limits in Redis


@dataclass(frozen=True)
class RequestContext:
    """One request's caller (and, as they come, what else a use case must know of it)."""

    principal: Principal

    @property
    def owner(self) -> Owner:
        return self.principal.owner


def init_app(app: Any, settings: Settings) -> None:
    """Make the services' context from the settings and the backends made before."""
    blobs = BlobStore(settings.files.base_dir, settings.files.max_bytes)
    embeddings = embeddings_for(settings)
    app.extensions["services"] = ServiceContext(
        backends=app.extensions["backends"],
        reasoning_secret=_reasoning_secret(settings),
        blobs=blobs,
        ingester=Ingester(blobs, embeddings),
        embeddings=embeddings,
        reject_unsupported_tools=settings.responses.reject_unsupported_tools,
        keepalive_seconds=settings.responses.keepalive_seconds,
        background_lease=settings.responses.background_lease,
        budget_webhook=_budget_webhook(settings),
        counters=RedisCounters(settings.auth.redis_url) if settings.auth.redis_url else None,
    )


def _budget_webhook(settings: Settings) -> Webhook | None:
    auth = settings.auth
    if not auth.budget_webhook_url:
        return None
    return Webhook(auth.budget_webhook_url, (auth.budget_webhook_secret or "").encode())


def _reasoning_secret(settings: Settings) -> bytes:
    """The key that seals reasoning: configured, else one kept in the store for every worker."""
    if settings.responses.reasoning_secret:
        return settings.responses.reasoning_secret.encode()
    with db.connection_context():
        return responses.shared_secret(REASONING_SECRET)
