"""Use cases: virtual keys (create with the secret shown once, change, rotate, delete).

A key lives in one tenant; an admin sees and touches the keys of its
scope (its tenant, and the key-name prefixes it is limited to), and no
others: those are a 404. Rotation makes a new secret; with a grace period
the one before keeps working until it ends, or until `revoke-previous`.
"""

from __future__ import annotations

import time
from typing import Any

from app.auth import tokens
from app.auth.keys import key_status
from app.auth.principal import DEFAULT_TENANT
from app.errors import InvalidRequest, NotFound, PermissionDenied
from app.protocol.gateway.objects import budget_fields, key_object
from app.protocol.ids import new_id
from app.services.admin import (
    AdminContext,
    audit,
    check_version,
    commit_change,
    field_diff,
    visible_tenant,
)
from app.services.admin import budgets as key_budgets
from app.store import budgets, tenancy
from app.store.tenancy import KeyRow

RESOURCE = "key"
LIMIT_FIELDS = ("budget_id", "rpm_limit", "tpm_limit", "max_parallel_requests")


def render(key: KeyRow, budget: Any = ...) -> dict[str, Any]:
    """The key object, with its own budget (read here unless given)."""
    if budget is ...:
        budget = budgets.get_budget(tenancy.key_budget_id(key.id))
    return {**key_object(key, key_status(key, time.time())), **budget_fields(budget)}


def visible_key(context: AdminContext, key_id: str) -> KeyRow:
    """The key, if this admin's scope reaches it; else a 404."""
    key = tenancy.get_key(key_id)
    if key is None or not context.admin.sees_key(key.tenant_id, key.name):
        raise NotFound(f"No key with id '{key_id}'.", param="key_id")
    return key


def _check_scope(context: AdminContext, tenant_id: str, name: str) -> None:
    """A key this admin may hold: in a tenant it sees, named within its prefixes."""
    visible_tenant(context, tenant_id)
    if not context.admin.sees_key(tenant_id, name):
        prefixes = ", ".join(context.admin.key_prefixes)
        raise PermissionDenied(
            f"This admin may only name keys starting with: {prefixes}.", param="name"
        )


def _check_expiry(body: dict[str, Any], now: float) -> None:
    expires_at = body.get("expires_at")
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest(
            "Invalid 'expires_at': must be in the future.", param="expires_at", code="invalid_value"
        )


def create_key(context: AdminContext, body: dict[str, Any]) -> dict[str, Any]:
    """Make a key; the answer holds its token (`secret`), which is never shown again."""
    context.admin.require_write()
    tenant_id = body.get("tenant_id") or context.admin.tenant_id or DEFAULT_TENANT
    _check_expiry(body, time.time())
    body, budget_changes = key_budgets.split(body)
    secret = tokens.new_secret()
    lookup_id = tokens.new_lookup_id()
    values = {
        "id": new_id("vk"),
        "lookup_id": lookup_id,
        "tenant_id": tenant_id,
        "name": body["name"],
        "project_id": body.get("project_id"),
        "user_id": body.get("user_id"),
        "allowed_models": _patterns(body.get("allowed_models")),
        "metadata": body.get("metadata") or {},
        "status": tenancy.ACTIVE,
        "expires_at": body.get("expires_at"),
        "secret_hash": tokens.secret_hash(context.key_pepper, secret),
        "last4": secret[-4:],
        "previous_hash": None,
        "previous_expires_at": None,
        "rotation_id": None,
        "rotated_at": None,
        **{name: body.get(name) for name in LIMIT_FIELDS},
    }

    def create() -> KeyRow:
        _check_scope(context, tenant_id, body["name"])
        key_budgets.check_group(body.get("budget_id"), tenant_id)
        key = tenancy.insert_key(values)
        key_budgets.apply(tenancy.key_budget_id(key.id), tenant_id, budgets.KEY, budget_changes)
        diff = field_diff(None, render(key))
        audit(context, "key.create", (RESOURCE, key.id), tenant_id, diff, key.created_at)
        return key

    key = commit_change(context, create)
    return {**render(key), "secret": tokens.token(lookup_id, secret)}


def _patterns(models: list[str] | None) -> tuple[str, ...] | None:
    return None if models is None else tuple(models)


def get_key(context: AdminContext, key_id: str) -> dict[str, Any]:
    return render(visible_key(context, key_id))


def list_keys(
    context: AdminContext, filters: dict[str, Any], page: dict[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    """Keys of this admin's scope, filtered and paged in SQL."""
    rows, more = tenancy.page_keys(
        filters,
        page["limit"],
        page["order"] == "asc",
        page["after"],
        page["before"],
        tenant_id=context.admin.tenant_id,
        name_prefixes=context.admin.key_prefixes,
    )
    own = budgets.budgets_by_id([tenancy.key_budget_id(row.id) for row in rows])
    return [render(row, own.get(tenancy.key_budget_id(row.id))) for row in rows], more


def update_key(
    context: AdminContext, key_id: str, body: dict[str, Any], expected: int | None
) -> dict[str, Any]:
    context.admin.require_write()
    _check_expiry(body, time.time())
    changes, budget_changes = key_budgets.split(body)
    if "allowed_models" in changes:
        changes["allowed_models"] = _patterns(changes["allowed_models"])

    def update() -> KeyRow:
        before = visible_key(context, key_id)
        check_version(before.version, expected)
        if "name" in changes:
            _check_scope(context, before.tenant_id, changes["name"])
        if "budget_id" in changes:
            key_budgets.check_group(changes["budget_id"], before.tenant_id)
        return _apply(context, "key.update", before, changes, budget_changes)

    return render(commit_change(context, update))


def _apply(
    context: AdminContext,
    action: str,
    before: KeyRow,
    changes: dict[str, Any],
    budget_changes: dict[str, Any] | None = None,
) -> KeyRow:
    """Change a key read in this transaction, with its audit row; a 412 if it moved on."""
    shown_before = render(before)
    after = tenancy.update_key(before.id, changes, before.version)
    if after is None:
        check_version(-1, before.version)  # changed since it was read
    budget_id = tenancy.key_budget_id(before.id)
    key_budgets.apply(budget_id, before.tenant_id, budgets.KEY, budget_changes or {})
    diff = field_diff(shown_before, render(after))
    audit(context, action, (RESOURCE, before.id), before.tenant_id, diff, after.updated_at)
    return after


def delete_key(context: AdminContext, key_id: str) -> None:
    """Delete softly: refused from the next request on; the ledger keeps its name."""
    context.admin.require_write()

    def delete() -> None:
        before = visible_key(context, key_id)
        tenancy.delete_key(key_id)
        diff = field_diff(render(before), None)
        audit(context, "key.delete", (RESOURCE, key_id), before.tenant_id, diff, int(time.time()))

    commit_change(context, delete)


def rotate_key(context: AdminContext, key_id: str, grace_seconds: int) -> dict[str, Any]:
    """Give a key a new secret; the old one works `grace_seconds` longer (0: not at all)."""
    context.admin.require_write()
    secret = tokens.new_secret()
    now = int(time.time())

    def rotate() -> KeyRow:
        before = visible_key(context, key_id)
        changes = {
            "secret_hash": tokens.secret_hash(context.key_pepper, secret),
            "last4": secret[-4:],
            "previous_hash": before.secret_hash if grace_seconds else None,
            "previous_expires_at": now + grace_seconds if grace_seconds else None,
            "rotation_id": new_id("rot"),
            "rotated_at": now,
        }
        return _apply(context, "key.rotate", before, changes)

    key = commit_change(context, rotate)
    return {
        "object": "gateway.key.rotation",
        "rotation_id": key.rotation_id,
        "secret": tokens.token(key.lookup_id, secret),
        "previous_secret_expires_at": key.previous_expires_at,
        "key": render(key),
    }


def revoke_previous(context: AdminContext, key_id: str) -> dict[str, Any]:
    """End a rotation's grace period now: only the newest secret works."""
    context.admin.require_write()

    def revoke() -> KeyRow:
        before = visible_key(context, key_id)
        changes = {"previous_hash": None, "previous_expires_at": None}
        return _apply(context, "key.revoke_previous", before, changes)

    return render(commit_change(context, revoke))
