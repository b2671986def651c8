"""Queries of the admin plane: tenants, virtual keys, the auth version, the audit log.

Rows come out as plain dataclasses (`TenantRow`, `KeyRow`) so the services
and the authenticator never hold a peewee model. Every change of a key or
a tenant raises `auth_version` in its own transaction, which is how every
worker's key cache knows to drop what it holds; the use cases write their
audit row in that same transaction (app/services/admin/).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields
from typing import Any

from peewee import IntegrityError, fn

from app.auth.principal import BudgetRef
from app.compact_json import dumps
from app.errors import Conflict
from app.store.models import AdminToken, AuditEntry, AuthVersion, Budget, Tenant, VirtualKey, db

AUTH_VERSION_ROW = 1
READ_AUTH_VERSION = {
    param: f"SELECT version FROM auth_version WHERE id = {param}" for param in ("?", "%s")
}
ACTIVE, DISABLED = "active", "disabled"


@dataclass(frozen=True)
class TenantRow:
    id: str
    name: str
    status: str
    metadata: dict[str, str]
    created_at: int
    updated_at: int
    version: int


@dataclass(frozen=True)
class KeyRow:
    id: str
    lookup_id: str
    tenant_id: str
    name: str
    project_id: str | None
    user_id: str | None
    allowed_models: tuple[str, ...] | None
    metadata: dict[str, str]
    status: str
    expires_at: int | None
    secret_hash: str
    last4: str
    previous_hash: str | None
    previous_expires_at: int | None
    rotation_id: str | None
    rotated_at: int | None
    created_at: int
    updated_at: int
    deleted_at: int | None
    version: int
    budget_id: str | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None


def key_budget_id(key_id: str) -> str:
    """The id of a key's own budget."""
    return f"key:{key_id}"


def tenant_budget_id(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


def auth_version() -> int:
    """The number every change of a key or tenant raises (0 on a store made without it)."""
    # Read on every keys-mode request: SQL written out, not built by the query compiler.
    row = db.execute_sql(READ_AUTH_VERSION[db.param], (AUTH_VERSION_ROW,)).fetchone()
    return row[0] if row else 0


def bump_auth_version() -> None:
    """Tell every worker's key cache that what it holds may be stale (in the caller's write)."""
    raised = (
        AuthVersion.update(version=AuthVersion.version + 1)
        .where(AuthVersion.id == AUTH_VERSION_ROW)
        .execute()
    )
    if not raised:
        AuthVersion.insert(id=AUTH_VERSION_ROW, version=1).execute()


# Tenants


def _tenant_row(row: Tenant) -> TenantRow:
    return TenantRow(
        id=row.id,
        name=row.name,
        status=row.status,
        metadata=json.loads(row.metadata),
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )


def get_tenant(tenant_id: str) -> TenantRow | None:
    row = Tenant.get_or_none(Tenant.id == tenant_id)
    return _tenant_row(row) if row else None


def insert_tenant(tenant_id: str, name: str, metadata: dict[str, str]) -> TenantRow:
    now = int(time.time())
    try:
        with db.atomic():  # a savepoint: the caller's transaction goes on after a conflict
            Tenant.insert(
                id=tenant_id,
                name=name,
                status=ACTIVE,
                metadata=dumps(metadata),
                created_at=now,
                updated_at=now,
                version=1,
            ).execute()
    except IntegrityError:
        raise Conflict(
            f"A tenant with id '{tenant_id}' already exists.",
            param="id",
            code="tenant_exists",
        ) from None
    bump_auth_version()
    return TenantRow(tenant_id, name, ACTIVE, metadata, now, now, 1)


def update_tenant(tenant_id: str, changes: dict[str, Any], version: int) -> TenantRow | None:
    """Apply `changes` if the tenant is still at `version`; None if it moved on."""
    values = {
        name: dumps(value) if name == "metadata" else value for name, value in changes.items()
    }
    updated = (
        Tenant.update(**values, updated_at=int(time.time()), version=Tenant.version + 1)
        .where((Tenant.id == tenant_id) & (Tenant.version == version))
        .execute()
    )
    if not updated:
        return None
    bump_auth_version()
    return get_tenant(tenant_id)


def delete_tenant(tenant_id: str) -> None:
    Tenant.delete().where(Tenant.id == tenant_id).execute()
    bump_auth_version()


def tenant_has_keys(tenant_id: str) -> bool:
    return (
        VirtualKey.select()
        .where((VirtualKey.tenant_id == tenant_id) & VirtualKey.deleted_at.is_null())
        .exists()
    )


def page_tenants(
    limit: int, ascending: bool, after: str | None, before: str | None, only: str | None
) -> tuple[list[TenantRow], bool]:
    """One page of tenants by id (only the one named `only`, for a tenant's own admin)."""
    query = Tenant.select()
    if only is not None:
        query = query.where(Tenant.id == only)
    rows, more = keyset_page(query, Tenant.id, limit, ascending, after, before)
    return [_tenant_row(row) for row in rows], more


# Virtual keys

KEY_FIELDS = tuple(field.name for field in fields(KeyRow))


def _key_row(row: VirtualKey) -> KeyRow:
    values = {name: getattr(row, name) for name in KEY_FIELDS}
    values["metadata"] = json.loads(row.metadata)
    models = row.allowed_models
    values["allowed_models"] = None if models is None else tuple(json.loads(models))
    return KeyRow(**values)


def _key_columns(values: dict[str, Any]) -> dict[str, Any]:
    """The columns of key fields: lists and mappings as JSON."""
    columns = dict(values)
    if "metadata" in columns:
        columns["metadata"] = dumps(columns["metadata"])
    if "allowed_models" in columns and columns["allowed_models"] is not None:
        columns["allowed_models"] = dumps(list(columns["allowed_models"]))
    return columns


def key_by_lookup(lookup_id: str) -> tuple[KeyRow, str, tuple[BudgetRef, ...]] | None:
    """The key a token names, its tenant's status and the budgets it counts in (None: no
    such key, or deleted)."""
    row = (
        VirtualKey.select(VirtualKey, Tenant.status.alias("tenant_status"))
        .join(Tenant, on=Tenant.id == VirtualKey.tenant_id)
        .where((VirtualKey.lookup_id == lookup_id) & VirtualKey.deleted_at.is_null())
        .objects()
        .first()
    )
    if row is None:
        return None
    return _key_row(row), row.tenant_status, budgets_of(row.id, row.tenant_id, row.budget_id)


def budgets_of(key_id: str, tenant_id: str, group_id: str | None) -> tuple[BudgetRef, ...]:
    """The budgets a key's requests count in: its own, its shared group's, its tenant's."""
    ids = [key_budget_id(key_id), tenant_budget_id(tenant_id), *([group_id] if group_id else [])]
    query = Budget.select(Budget.id, Budget.period, Budget.timezone).where(Budget.id.in_(ids))
    return tuple(BudgetRef(*row) for row in query.order_by(Budget.id).tuples())


def get_key(key_id: str) -> KeyRow | None:
    """A key that is not deleted."""
    row = VirtualKey.get_or_none((VirtualKey.id == key_id) & VirtualKey.deleted_at.is_null())
    return _key_row(row) if row else None


def insert_key(values: dict[str, Any]) -> KeyRow:
    """Store a new key (every field of `KeyRow` but the times and version)."""
    now = int(time.time())
    row = {**values, "created_at": now, "updated_at": now, "deleted_at": None, "version": 1}
    with _unique_name(values["name"]):
        VirtualKey.insert(**_key_columns(row)).execute()
    bump_auth_version()
    return KeyRow(**row)


def update_key(key_id: str, changes: dict[str, Any], version: int | None = None) -> KeyRow | None:
    """Apply `changes` to a key not deleted (and, given `version`, still at it); None if not."""
    condition = (VirtualKey.id == key_id) & VirtualKey.deleted_at.is_null()
    if version is not None:
        condition &= VirtualKey.version == version
    now = int(time.time())
    columns = {**_key_columns(changes), "updated_at": now, "version": VirtualKey.version + 1}
    with _unique_name(changes.get("name", "")):
        updated = VirtualKey.update(**columns).where(condition).execute()
    if not updated:
        return None
    bump_auth_version()
    return get_key(key_id)


def delete_key(key_id: str) -> bool:
    """Delete a key softly: it stops working at once, and the ledger keeps its name."""
    now = int(time.time())
    deleted = (
        VirtualKey.update(deleted_at=now, updated_at=now, version=VirtualKey.version + 1)
        .where((VirtualKey.id == key_id) & VirtualKey.deleted_at.is_null())
        .execute()
    )
    if deleted:
        bump_auth_version()
    return bool(deleted)


class _unique_name:
    """Turn the database's refusal of a second key with one name into a 409."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.savepoint = db.atomic()

    def __enter__(self) -> None:
        self.savepoint.__enter__()

    def __exit__(self, kind: Any, error: Any, trace: Any) -> bool:
        self.savepoint.__exit__(kind, error, trace)
        if isinstance(error, IntegrityError):
            raise Conflict(
                f"The tenant already has a key named '{self.name}'.",
                param="name",
                code="key_name_taken",
            ) from None
        return False


def page_keys(
    filters: dict[str, Any],
    limit: int,
    ascending: bool,
    after: str | None,
    before: str | None,
    tenant_id: str | None,
    name_prefixes: tuple[str, ...],
) -> tuple[list[KeyRow], bool]:
    """One page of the keys that are not deleted, filtered in SQL before the limit.

    `tenant_id` and `name_prefixes` are the admin's scope (None and (): all);
    `filters` the query's own (`tenant_id`, `project_id`, `status`, `name_prefix`).
    """
    query = VirtualKey.select().where(VirtualKey.deleted_at.is_null())
    if tenant_id is not None:
        query = query.where(VirtualKey.tenant_id == tenant_id)
    if name_prefixes:
        query = query.where(any_prefix(VirtualKey.name, name_prefixes))
    for name in ("tenant_id", "project_id"):
        if filters.get(name) is not None:
            query = query.where(getattr(VirtualKey, name) == filters[name])
    if filters.get("name_prefix"):
        query = query.where(any_prefix(VirtualKey.name, (filters["name_prefix"],)))
    status = filters.get("status")
    now = int(time.time())
    expired = VirtualKey.expires_at.is_null(False) & (VirtualKey.expires_at <= now)
    if status == "expired":
        query = query.where(expired)
    elif status is not None:
        query = query.where((VirtualKey.status == status) & ~expired)
    rows, more = keyset_page(query, VirtualKey.id, limit, ascending, after, before)
    return [_key_row(row) for row in rows], more


def any_prefix(column: Any, prefixes: tuple[str, ...]) -> Any:
    """`column` starts with one of `prefixes` (compared exactly, not as a LIKE pattern)."""
    clause = None
    for prefix in prefixes:
        starts = fn.SUBSTR(column, 1, len(prefix)) == prefix
        clause = starts if clause is None else clause | starts
    return clause


def keyset_page(
    query: Any, key: Any, limit: int, ascending: bool, after: str | None, before: str | None
) -> tuple[list[Any], bool]:
    """A keyset page of `query` along the unique column `key`, and whether more follow."""
    if after is not None:
        query = query.where(key > after if ascending else key < after)
    if before is not None:
        query = query.where(key < before if ascending else key > before)
    rows = list(query.order_by(key.asc() if ascending else key.desc()).limit(limit + 1))
    return rows[:limit], len(rows) > limit


# Audit


def record_audit(entry: dict[str, Any]) -> None:
    """Write one audit row (in the caller's transaction, beside the change it tells of)."""
    AuditEntry.insert(**{**entry, "diff": dumps(entry["diff"])}).execute()


def page_audit(
    filters: dict[str, Any], limit: int, after: str | None, tenant_id: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """Newest first, filtered in SQL before the limit (`tenant_id`: the admin's scope)."""
    query = AuditEntry.select()
    if tenant_id is not None:
        query = query.where(AuditEntry.tenant_id == tenant_id)
    if filters.get("start") is not None:
        query = query.where(AuditEntry.created_at >= filters["start"])
    if filters.get("end") is not None:
        query = query.where(AuditEntry.created_at < filters["end"])
    if filters.get("actor"):
        query = query.where(AuditEntry.actor == filters["actor"])
    if filters.get("resource"):
        query = query.where(AuditEntry.resource_id == filters["resource"])
    rows, more = keyset_page(query, AuditEntry.id, limit, False, after, None)
    entries = [
        {
            "id": row.id,
            "object": "gateway.audit_entry",
            "created_at": row.created_at,
            "tenant_id": row.tenant_id,
            "actor": row.actor,
            "action": row.action,
            "resource_type": row.resource_type,
            "resource_id": row.resource_id,
            "diff": json.loads(row.diff),
            "request_id": row.request_id,
        }
        for row in rows
    ]
    return entries, more


# Admin tokens


@dataclass(frozen=True)
class AdminTokenRow:
    id: str
    lookup_id: str
    name: str
    role: str
    tenant_id: str | None
    key_prefixes: tuple[str, ...]
    secret_hash: str
    last4: str
    created_by: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None


def _admin_token_row(row: AdminToken) -> AdminTokenRow:
    values = {name: getattr(row, name) for name in AdminTokenRow.__dataclass_fields__}
    values["key_prefixes"] = tuple(json.loads(row.key_prefixes))
    return AdminTokenRow(**values)


def insert_admin_token(row: AdminTokenRow) -> None:
    values = {name: getattr(row, name) for name in AdminTokenRow.__dataclass_fields__}
    values["key_prefixes"] = dumps(list(row.key_prefixes))
    AdminToken.insert(**values).execute()


def admin_token_by_lookup(lookup_id: str) -> AdminTokenRow | None:
    row = AdminToken.get_or_none(AdminToken.lookup_id == lookup_id)
    return _admin_token_row(row) if row else None


def get_admin_token(token_id: str) -> AdminTokenRow | None:
    row = AdminToken.get_or_none((AdminToken.id == token_id) & AdminToken.revoked_at.is_null())
    return _admin_token_row(row) if row else None


def revoke_admin_token(token_id: str) -> bool:
    revoked = (
        AdminToken.update(revoked_at=int(time.time()))
        .where((AdminToken.id == token_id) & AdminToken.revoked_at.is_null())
        .execute()
    )
    return bool(revoked)


def page_admin_tokens(
    tenant_id: str | None, limit: int, ascending: bool, after: str | None, before: str | None
) -> tuple[list[AdminTokenRow], bool]:
    """Tokens not revoked (of one tenant, for a tenant's admin)."""
    query = AdminToken.select().where(AdminToken.revoked_at.is_null())
    if tenant_id is not None:
        query = query.where(AdminToken.tenant_id == tenant_id)
    rows, more = keyset_page(query, AdminToken.id, limit, ascending, after, before)
    return [_admin_token_row(row) for row in rows], more
