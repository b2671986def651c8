"""Use cases: tenants (a super-admin makes, changes, deletes them; a tenant admin sees its own)."""

from __future__ import annotations

import time
from typing import Any

from app.auth.principal import DEFAULT_TENANT
from app.errors import Conflict
from app.protocol.gateway.objects import budget_fields, tenant_object
from app.protocol.ids import new_id
from app.services.admin import (
    AdminContext,
    audit,
    check_version,
    commit_change,
    field_diff,
    visible_tenant,
)
from app.services.admin import budgets as tenant_budgets
from app.store import budgets, tenancy
from app.store.tenancy import TenantRow

RESOURCE = "tenant"


def render(tenant: TenantRow) -> dict[str, Any]:
    budget = budgets.get_budget(tenancy.tenant_budget_id(tenant.id))
    return {**tenant_object(tenant), **budget_fields(budget)}


def create_tenant(context: AdminContext, body: dict[str, Any]) -> dict[str, Any]:
    context.admin.require_super()
    context.admin.require_write()
    tenant_id = body.get("id") or new_id("tenant")
    _, budget_changes = tenant_budgets.split(body)

    def create() -> TenantRow:
        tenant = tenancy.insert_tenant(tenant_id, body["name"], body.get("metadata") or {})
        budget_id = tenancy.tenant_budget_id(tenant_id)
        tenant_budgets.apply(budget_id, tenant_id, budgets.TENANT, budget_changes)
        made = render(tenant)
        diff = field_diff(None, made)
        audit(context, "tenant.create", (RESOURCE, tenant_id), tenant_id, diff, tenant.created_at)
        return tenant

    return render(commit_change(context, create))


def get_tenant(context: AdminContext, tenant_id: str) -> dict[str, Any]:
    return render(visible_tenant(context, tenant_id))


def list_tenants(context: AdminContext, page: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    rows, more = tenancy.page_tenants(
        page["limit"],
        page["order"] == "asc",
        page["after"],
        page["before"],
        only=context.admin.tenant_id,
    )
    return [render(row) for row in rows], more


def update_tenant(
    context: AdminContext, tenant_id: str, body: dict[str, Any], expected: int | None
) -> dict[str, Any]:
    context.admin.require_super()
    context.admin.require_write()

    own, budget_changes = tenant_budgets.split(body)

    def update() -> TenantRow:
        before = visible_tenant(context, tenant_id)
        check_version(before.version, expected)
        shown_before = render(before)
        after = tenancy.update_tenant(tenant_id, own, before.version)
        if after is None:
            check_version(-1, before.version)  # changed since it was read: a 412
        budget_id = tenancy.tenant_budget_id(tenant_id)
        tenant_budgets.apply(budget_id, tenant_id, budgets.TENANT, budget_changes)
        diff = field_diff(shown_before, render(after))
        audit(context, "tenant.update", (RESOURCE, tenant_id), tenant_id, diff, after.updated_at)
        return after

    return render(commit_change(context, update))


def delete_tenant(context: AdminContext, tenant_id: str) -> None:
    context.admin.require_super()
    context.admin.require_write()

    def delete() -> None:
        before = visible_tenant(context, tenant_id)
        if tenant_id == DEFAULT_TENANT:
            raise Conflict("The default tenant cannot be deleted.", code="tenant_in_use")
        if tenancy.tenant_has_keys(tenant_id):
            raise Conflict(
                f"Tenant '{tenant_id}' still has keys: delete them first.", code="tenant_in_use"
            )
        shown_before = render(before)
        tenancy.delete_tenant(tenant_id)
        budgets.delete_budget(tenancy.tenant_budget_id(tenant_id))
        diff = field_diff(shown_before, None)
        audit(context, "tenant.delete", (RESOURCE, tenant_id), tenant_id, diff, int(time.time()))

    commit_change(context, delete)
