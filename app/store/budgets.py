"""Budgets as the admin plane sets them: a key's own, a shared group's, a tenant's.

A change to which budgets exist, or to their calendar, raises the auth
version: the keys cached in every worker carry the budgets they count in.
What is spent and reserved is only ever changed by app/store/limits.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from peewee import PostgresqlDatabase

from app.compact_json import dumps
from app.store.models import Budget, VirtualKey, db
from app.store.tenancy import bump_auth_version, keyset_page

KEY, GROUP, TENANT = "key", "group", "tenant"


@dataclass(frozen=True)
class BudgetRow:
    id: str
    tenant_id: str
    kind: str
    name: str | None
    limit_micros: int
    soft_limit_micros: int | None
    period: str
    timezone: str
    period_start: int
    spent_micros: int
    reserved_micros: int
    metadata: dict[str, str]
    created_at: int
    updated_at: int
    version: int


def _row(budget: Budget) -> BudgetRow:
    values = {name: getattr(budget, name) for name in BudgetRow.__dataclass_fields__}
    values["metadata"] = json.loads(budget.metadata)
    return BudgetRow(**values)


def get_budget(budget_id: str) -> BudgetRow | None:
    row = Budget.get_or_none(Budget.id == budget_id)
    return _row(row) if row else None


def budgets_by_id(budget_ids: list[str]) -> dict[str, BudgetRow]:
    return {row.id: _row(row) for row in Budget.select().where(Budget.id.in_(budget_ids))}


def put_budget(
    budget_id: str,
    tenant_id: str,
    kind: str,
    values: dict[str, Any],
    version: int | None = None,
) -> BudgetRow | None:
    """Create the budget or change its settings (limit, soft limit, period, zone, name).

    Given `version`, only a budget still at it is changed (None: it moved on).
    """
    now = int(time.time())
    columns = {
        name: dumps(value) if name == "metadata" else value for name, value in values.items()
    }
    condition = Budget.id == budget_id
    if version is not None:
        condition &= Budget.version == version
    updated = (
        Budget.update(**columns, updated_at=now, version=Budget.version + 1)
        .where(condition)
        .execute()
    )
    if not updated and version is not None:
        return None
    if not updated:
        Budget.insert(
            id=budget_id,
            tenant_id=tenant_id,
            kind=kind,
            name=values.get("name"),
            limit_micros=values["limit_micros"],
            soft_limit_micros=values.get("soft_limit_micros"),
            period=values.get("period", "none"),
            timezone=values.get("timezone", "UTC"),
            period_start=0,
            spent_micros=0,
            reserved_micros=0,
            metadata=dumps(values.get("metadata") or {}),
            created_at=now,
            updated_at=now,
            version=1,
        ).execute()
    bump_auth_version()
    budget = get_budget(budget_id)
    assert budget is not None
    return budget


def delete_budget(budget_id: str) -> bool:
    deleted = Budget.delete().where(Budget.id == budget_id).execute()
    if deleted:
        bump_auth_version()
    return bool(deleted)


def lock_budget(budget_id: str, share: bool) -> None:
    """Hold the budget's row until the transaction ends: a key moving into a shared budget
    (`share`) and the budget's deletion then run one after the other, never both.

    PostgreSQL only: SQLite runs one write transaction at a time anyway.
    """
    if isinstance(db.obj, PostgresqlDatabase):
        mode = "SHARE" if share else "UPDATE"
        db.execute_sql(f"SELECT id FROM budgets WHERE id = %s FOR {mode}", (budget_id,))


def keys_in_group(budget_id: str) -> bool:
    return (
        VirtualKey.select()
        .where((VirtualKey.budget_id == budget_id) & VirtualKey.deleted_at.is_null())
        .exists()
    )


def page_groups(
    tenant_id: str | None, limit: int, ascending: bool, after: str | None, before: str | None
) -> tuple[list[BudgetRow], bool]:
    """Shared budgets (of one tenant, or every tenant's for a super-admin)."""

    query = Budget.select().where(Budget.kind == GROUP)
    if tenant_id is not None:
        query = query.where(Budget.tenant_id == tenant_id)
    rows, more = keyset_page(query, Budget.id, limit, ascending, after, before)
    return [_row(row) for row in rows], more


def shown_budgets(tenant_id: str | None) -> list[BudgetRow]:
    """Shared and tenant budgets (of one tenant, or all), for the metrics."""
    query = Budget.select().where(Budget.kind.in_((GROUP, TENANT))).order_by(Budget.id)
    if tenant_id is not None:
        query = query.where(Budget.tenant_id == tenant_id)
    return [_row(row) for row in query]
