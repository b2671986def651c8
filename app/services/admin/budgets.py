"""Use cases: budgets - a key's own and a tenant's (set with the key or tenant), shared ones.

The API speaks USD (`max_budget_usd`, `soft_budget_usd`); the store keeps
integer micro-USD, so sums are exact. `max_budget_usd: null` removes a
key's or tenant's budget. A shared budget (`bud_…`) is named by the keys
that count in it (`budget_id`), which must be of its tenant.
"""

from __future__ import annotations

import time
from typing import Any

from app.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from app.protocol.gateway.objects import budget_object
from app.protocol.ids import new_id
from app.services.admin import (
    AdminContext,
    audit,
    check_version,
    commit_change,
    field_diff,
    visible_tenant,
)
from app.store import budgets
from app.store.budgets import GROUP, BudgetRow

RESOURCE = "budget"
FIELDS = ("max_budget_usd", "soft_budget_usd", "budget_period", "budget_timezone")
MICROS = 1_000_000


def split(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the object's own fields, its budget's fields) of a request body."""
    own = {name: value for name, value in body.items() if name not in FIELDS}
    return own, {name: value for name, value in body.items() if name in FIELDS}


def micros(usd: float | None) -> int | None:
    return None if usd is None else round(usd * MICROS)


def _columns(changes: dict[str, Any]) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    if "max_budget_usd" in changes:
        columns["limit_micros"] = micros(changes["max_budget_usd"])
    if "soft_budget_usd" in changes:
        columns["soft_limit_micros"] = micros(changes["soft_budget_usd"])
    if "budget_period" in changes:
        columns["period"] = changes["budget_period"]
    if "budget_timezone" in changes:
        columns["timezone"] = changes["budget_timezone"]
    return columns


def apply(budget_id: str, tenant_id: str, kind: str, changes: dict[str, Any]) -> BudgetRow | None:
    """Set, change or (with `max_budget_usd: null`) remove the budget of a key or tenant."""
    existing = budgets.get_budget(budget_id)
    if not changes:
        return existing
    if "max_budget_usd" in changes and changes["max_budget_usd"] is None:
        budgets.delete_budget(budget_id)
        return None
    if existing is None and "max_budget_usd" not in changes:
        raise InvalidRequest(
            "Missing required parameter: 'max_budget_usd' (the budget's other settings "
            "need a budget).",
            param="max_budget_usd",
            code="missing_required_parameter",
        )
    return budgets.put_budget(budget_id, tenant_id, kind, _columns(changes))


def check_group(budget_id: str | None, tenant_id: str) -> None:
    """A key may count in a shared budget of its own tenant only."""
    if budget_id is None:
        return
    budgets.lock_budget(budget_id, share=True)  # not deleted until this key's change commits
    group = budgets.get_budget(budget_id)
    if group is None or group.kind != GROUP or group.tenant_id != tenant_id:
        raise InvalidRequest(
            f"Invalid 'budget_id': no shared budget '{budget_id}' in tenant '{tenant_id}'.",
            param="budget_id",
            code="invalid_value",
        )


def visible_budget(context: AdminContext, budget_id: str) -> BudgetRow:
    budget = budgets.get_budget(budget_id)
    if budget is None or budget.kind != GROUP or not context.admin.sees_tenant(budget.tenant_id):
        raise NotFound(f"No budget with id '{budget_id}'.", param="budget_id")
    return budget


def _require_whole_tenant(context: AdminContext) -> None:
    """A shared budget counts keys of any name: not for an admin limited to key prefixes."""
    context.admin.require_write()
    if context.admin.key_prefixes:
        raise PermissionDenied("An admin limited to key prefixes cannot change shared budgets.")


def create_budget(context: AdminContext, body: dict[str, Any]) -> dict[str, Any]:
    _require_whole_tenant(context)
    tenant_id = body.get("tenant_id") or context.admin.tenant_id or "default"
    budget_id = new_id("bud")
    _, changes = split(body)

    def create() -> BudgetRow:
        visible_tenant(context, tenant_id)
        columns = {**_columns(changes), "name": body["name"], "metadata": body.get("metadata")}
        budget = budgets.put_budget(budget_id, tenant_id, GROUP, columns)
        diff = field_diff(None, budget_object(budget))
        audit(context, "budget.create", (RESOURCE, budget_id), tenant_id, diff, budget.created_at)
        return budget

    return budget_object(commit_change(context, create))


def get_budget(context: AdminContext, budget_id: str) -> dict[str, Any]:
    return budget_object(visible_budget(context, budget_id))


def list_budgets(context: AdminContext, page: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    rows, more = budgets.page_groups(
        context.admin.tenant_id,
        page["limit"],
        page["order"] == "asc",
        page["after"],
        page["before"],
    )
    return [budget_object(row) for row in rows], more


def update_budget(
    context: AdminContext, budget_id: str, body: dict[str, Any], expected: int | None
) -> dict[str, Any]:
    _require_whole_tenant(context)
    if "max_budget_usd" in body and body["max_budget_usd"] is None:
        raise InvalidRequest(
            "Invalid 'max_budget_usd': a shared budget keeps a limit (delete it instead).",
            param="max_budget_usd",
            code="invalid_value",
        )
    own, changes = split(body)

    def update() -> BudgetRow:
        before = visible_budget(context, budget_id)
        check_version(before.version, expected)
        columns = {**_columns(changes), **own}
        after = budgets.put_budget(budget_id, before.tenant_id, GROUP, columns, before.version)
        if after is None:
            check_version(-1, before.version)  # changed since it was read: a 412
        diff = field_diff(budget_object(before), budget_object(after))
        audit(
            context,
            "budget.update",
            (RESOURCE, budget_id),
            before.tenant_id,
            diff,
            after.updated_at,
        )
        return after

    return budget_object(commit_change(context, update))


def delete_budget(context: AdminContext, budget_id: str) -> None:
    _require_whole_tenant(context)

    def delete() -> None:
        budgets.lock_budget(budget_id, share=False)  # no key moves in while this one looks
        before = visible_budget(context, budget_id)
        if budgets.keys_in_group(budget_id):
            raise Conflict(
                f"Keys still count in budget '{budget_id}': move them first.",
                code="budget_in_use",
            )
        budgets.delete_budget(budget_id)
        diff = field_diff(budget_object(before), None)
        audit(
            context,
            "budget.delete",
            (RESOURCE, budget_id),
            before.tenant_id,
            diff,
            int(time.time()),
        )

    commit_change(context, delete)
