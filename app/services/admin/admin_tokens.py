"""Use cases: admin tokens made through the API (the token shown once).

An admin hands out no more than it holds: a tenant's admin makes tokens of
its own tenant only, limited to key-name prefixes within its own; a
viewer makes none. Deleting a token revokes it at once (it is looked up on
every admin request, not cached).
"""

from __future__ import annotations

import time
from typing import Any

from app.auth import tokens
from app.errors import InvalidRequest, NotFound, PermissionDenied
from app.protocol.gateway.objects import admin_token_object
from app.protocol.ids import new_id
from app.services.admin import AdminContext, audit, commit_change, field_diff, visible_tenant
from app.store import tenancy
from app.store.tenancy import AdminTokenRow

RESOURCE = "admin_token"


def _check_within(context: AdminContext, tenant_id: str | None, prefixes: tuple[str, ...]) -> None:
    admin = context.admin
    if tenant_id is None:
        admin.require_super()
    else:
        visible_tenant(context, tenant_id)
    if admin.key_prefixes and (
        not prefixes or not all(prefix.startswith(admin.key_prefixes) for prefix in prefixes)
    ):
        raise PermissionDenied(
            "An admin limited to key prefixes can only make tokens within them.",
            param="allowed_key_prefixes",
        )


def create_admin_token(context: AdminContext, body: dict[str, Any]) -> dict[str, Any]:
    context.admin.require_write()
    now = int(time.time())
    if body.get("expires_at") is not None and body["expires_at"] <= now:
        raise InvalidRequest(
            "Invalid 'expires_at': must be in the future.", param="expires_at", code="invalid_value"
        )
    tenant_id = body.get("tenant_id", context.admin.tenant_id)
    prefixes = tuple(body.get("allowed_key_prefixes") or context.admin.key_prefixes)
    secret, lookup_id = tokens.new_secret(), tokens.new_lookup_id()
    row = AdminTokenRow(
        id=new_id("at"),
        lookup_id=lookup_id,
        name=body["name"],
        role=body["role"],
        tenant_id=tenant_id,
        key_prefixes=prefixes,
        secret_hash=tokens.secret_hash(context.admin_pepper, secret),
        last4=secret[-4:],
        created_by=context.admin.actor,
        created_at=now,
        expires_at=body.get("expires_at"),
        revoked_at=None,
    )

    def create() -> AdminTokenRow:
        _check_within(context, tenant_id, prefixes)
        tenancy.insert_admin_token(row)
        diff = field_diff(None, admin_token_object(row))
        audit(context, "admin_token.create", (RESOURCE, row.id), tenant_id, diff, now)
        return row

    made = commit_change(context, create)
    token = tokens.token(lookup_id, secret, tokens.ADMIN_PREFIX)
    return {**admin_token_object(made), "token": token}


def _visible(context: AdminContext, token_id: str) -> AdminTokenRow:
    row = tenancy.get_admin_token(token_id)
    if row is None or (
        context.admin.tenant_id is not None and row.tenant_id != context.admin.tenant_id
    ):
        raise NotFound(f"No admin token with id '{token_id}'.", param="token_id")
    return row


def get_admin_token(context: AdminContext, token_id: str) -> dict[str, Any]:
    return admin_token_object(_visible(context, token_id))


def list_admin_tokens(
    context: AdminContext, page: dict[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    rows, more = tenancy.page_admin_tokens(
        context.admin.tenant_id,
        page["limit"],
        page["order"] == "asc",
        page["after"],
        page["before"],
    )
    return [admin_token_object(row) for row in rows], more


def delete_admin_token(context: AdminContext, token_id: str) -> None:
    context.admin.require_write()

    def delete() -> None:
        row = _visible(context, token_id)
        _check_within(context, row.tenant_id, row.key_prefixes)
        tenancy.revoke_admin_token(token_id)
        diff = field_diff(admin_token_object(row), None)
        audit(
            context,
            "admin_token.delete",
            (RESOURCE, token_id),
            row.tenant_id,
            diff,
            int(time.time()),
        )

    commit_change(context, delete)
