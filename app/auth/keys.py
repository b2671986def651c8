"""Keys mode: a client is the virtual key it presents.

A token names its key by the lookup id inside it (one indexed read, or
none: a worker keeps what it read for up to `CACHE_SECONDS`), then its
secret is checked against the stored HMAC in constant time; after a
rotation with a grace period, the secret before it works until the grace
ends. Every request reads the store's auth version first (one row by its
key): any change of a key or a tenant, made by any worker of any node,
raises it, and a worker that sees it move drops its cache, so a key
disabled anywhere is refused everywhere from the next request on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from app.auth import presented_key, tokens
from app.auth.principal import BudgetRef, Limits, Owner, Principal
from app.errors import Unauthorized
from app.logs import mask_key
from app.store import tenancy
from app.store.tenancy import ACTIVE, KeyRow

CACHE_SECONDS = 5.0
MAX_CACHED = 10_000  # tokens with unknown lookup ids are cached too: bound what they take
MISSING = (
    "You didn't provide an API key. Send your gateway key in an Authorization header "
    "(Authorization: Bearer gw-...) or an x-api-key header."
)

__all__ = ["VirtualKeys", "key_status"]

Found = tuple[KeyRow, str, tuple[BudgetRef, ...]]  # the key, its tenant's status, its budgets


def key_status(key: KeyRow, now: float) -> str:
    """`active`, `disabled` or `expired` (an expiry in the past wins over the stored status)."""
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return key.status


class VirtualKeys:
    """The authenticator of keys mode: headers in, the key's principal out (or a 401)."""

    def __init__(self, pepper: bytes, share_projects: bool) -> None:
        self.pepper = pepper
        self.share_projects = share_projects
        self.cache: dict[str, tuple[Found | None, float]] = {}
        self.version: int | None = None

    def principal_for(self, headers: Mapping[str, str]) -> Principal:
        presented = presented_key(headers)
        if not presented:
            raise Unauthorized(MISSING, code="missing_api_key")
        parsed = tokens.parse(presented)
        found = self._lookup(parsed[0]) if parsed else None
        now = time.time()
        if found is None or not self._secret_matches(found[0], parsed[1], now):
            raise Unauthorized(f"Incorrect API key provided: {mask_key(presented)}.")
        key, tenant_status, budgets = found
        status = key_status(key, now)
        if status != ACTIVE:
            raise Unauthorized(f"This API key is {status}.", code=f"key_{status}")
        if tenant_status != ACTIVE:
            raise Unauthorized("This API key's tenant is disabled.", code="tenant_disabled")
        owner = Owner(key.tenant_id, key.id, key.project_id, reads_project=self.share_projects)
        return Principal(
            tenant_id=key.tenant_id,
            key_id=key.id,
            key_name=key.name,
            project_id=key.project_id,
            user_id=key.user_id,
            allowed_models=key.allowed_models,
            owner=owner,
            limits=Limits(key.rpm_limit, key.tpm_limit, key.max_parallel_requests, budgets),
        )

    def _secret_matches(self, key: KeyRow, secret: str, now: float) -> bool:
        if tokens.matches(self.pepper, secret, key.secret_hash):
            return True
        in_grace = key.previous_expires_at is not None and now < key.previous_expires_at
        return in_grace and tokens.matches(self.pepper, secret, key.previous_hash)

    def _lookup(self, lookup_id: str) -> Found | None:
        now = time.monotonic()
        version = tenancy.auth_version()
        if version != self.version or len(self.cache) >= MAX_CACHED:
            self.cache.clear()
            self.version = version
        cached = self.cache.get(lookup_id)
        if cached is not None and now - cached[1] < CACHE_SECONDS:
            return cached[0]
        found = tenancy.key_by_lookup(lookup_id)
        self.cache[lookup_id] = (found, now)
        return found

    def forget(self) -> None:
        """Drop every cached key (this worker changed one)."""
        self.cache.clear()
        self.version = None
