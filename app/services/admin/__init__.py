"""Use cases of the admin plane: tenants, virtual keys, the audit log, idempotent replays.

Each takes an `AdminContext`: who asks (an `Admin`, with its role and
scope) and what the audit log records of the request. Every change is one
write transaction that also writes its audit row and raises the auth
version (app/store/tenancy.py), so a change and its record commit or fail
together. What an admin's scope does not reach answers 404, as if it did
not exist; what its role does not allow, 403.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.auth.admin import Admin
from app.errors import InvalidRequest, NotFound, PreconditionFailed
from app.protocol.gateway.objects import SECRET_FIELDS
from app.protocol.ids import new_id
from app.store import tenancy
from app.store.tenancy import TenantRow
from app.store.writes import write_transaction

ETAG_PREFIX = 'W/"'
T = TypeVar("T")


@dataclass(frozen=True)
class AdminContext:
    """One admin request: who asks, its id (for the audit log), and what a change must tell."""

    admin: Admin
    request_id: str
    # The data plane's authenticator: a change drops this worker's cached keys at once.
    keys: Any = None
    key_pepper: bytes = field(default=b"", repr=False)  # what key secrets are hashed with
    replay_key: bytes = field(default=b"", repr=False)  # what idempotent replays are sealed with
    admin_pepper: bytes = field(default=b"", repr=False)  # what admin token secrets are hashed with


def audit(
    context: AdminContext,
    action: str,
    resource: tuple[str, str],
    tenant_id: str | None,
    diff: dict[str, Any],
    now: int,
) -> None:
    """Record one change (in the transaction that makes it)."""
    resource_type, resource_id = resource
    tenancy.record_audit(
        {
            "id": new_id("audit"),
            "created_at": now,
            "tenant_id": tenant_id,
            "actor": context.admin.actor,
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "diff": diff,
            "request_id": context.request_id,
        }
    )


def list_audit(
    context: AdminContext, filters: dict[str, Any], page: dict[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    """The audit log of this admin's scope, newest first, filtered in SQL before the limit."""
    return tenancy.page_audit(filters, page["limit"], page["after"], context.admin.tenant_id)


def field_diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """`{field: [old, new]}` for each field that changed; secrets never appear."""
    before, after = before or {}, after or {}
    diff = {}
    for name in dict.fromkeys([*before, *after]):
        if name in SECRET_FIELDS or name in ("updated_at", "version", "object"):
            continue
        old, new = before.get(name), after.get(name)
        if old != new:
            diff[name] = [old, new]
    return diff


def commit_change(context: AdminContext, change: Callable[[], T]) -> T:
    """Make `change` (with its audit row) in one write, then drop this worker's cached keys."""
    result = write_transaction(change)
    if context.keys is not None:
        context.keys.forget()
    return result


def expected_version(if_match: str | None) -> int | None:
    """The version an `If-Match: W/"N"` header expects (None: no header, or `*`)."""
    if if_match is None or if_match.strip() == "*":
        return None
    text = if_match.strip()
    text = text[len(ETAG_PREFIX) - 1 :] if text.startswith(ETAG_PREFIX) else text
    try:
        return int(text.strip('"'))
    except ValueError:
        raise InvalidRequest(
            'Invalid If-Match header: expected an ETag such as W/"3".',
            param="If-Match",
            code="invalid_header",
        ) from None


def etag(version: int) -> str:
    return f'{ETAG_PREFIX}{version}"'


def check_version(current: int, expected: int | None) -> None:
    if expected is not None and expected != current:
        raise PreconditionFailed(
            f"The object is at version {current}, not {expected}: read it again, then retry."
        )


def visible_tenant(context: AdminContext, tenant_id: str) -> TenantRow:
    """The tenant, if this admin's scope reaches it; else a 404."""
    tenant = tenancy.get_tenant(tenant_id) if context.admin.sees_tenant(tenant_id) else None
    if tenant is None:
        raise NotFound(f"No tenant with id '{tenant_id}'.", param="tenant_id")
    return tenant
