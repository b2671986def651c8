"""The usage ledger: one row per request of a virtual key, and what is read off it.

A row is written in the transaction that stores the response (and settles
its reservation), so spend is visible the moment the response is. Every
read filters in SQL before its limit, the admin's scope included; the
summaries are GROUP BY queries; the export walks the whole range by keyset
pages, never holding more than one page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from peewee import SQL, fn

from app.store.models import LedgerEntry, db
from app.store.writes import insert_rows

COLUMNS = tuple(LedgerEntry._meta.sorted_field_names)
GROUPS = {
    "key": (LedgerEntry.key_id, LedgerEntry.key_name),
    "tenant": (LedgerEntry.tenant_id,),
    "model": (LedgerEntry.model,),
    "project": (LedgerEntry.project_id,),
    "user": (LedgerEntry.user_id,),
    "status": (LedgerEntry.status,),
}
EXPORT_PAGE = 1000
SECONDS_PER_DAY = 86_400


def record(row: dict[str, Any]) -> None:
    """Write one request's row (in the caller's transaction; SQL made once, not per row)."""
    insert_rows(LedgerEntry, [row])


def _filtered(filters: dict[str, Any], tenant_id: str | None, key_ids: Any) -> Any:
    """The ledger rows of an admin's scope (`tenant_id`, `key_ids` a subquery) and filters."""
    query = LedgerEntry.select()
    conditions = []
    if tenant_id is not None:
        conditions.append(LedgerEntry.tenant_id == tenant_id)
    if key_ids is not None:
        conditions.append(LedgerEntry.key_id.in_(key_ids))
    if filters.get("start") is not None:
        conditions.append(LedgerEntry.created_at >= filters["start"])
    if filters.get("end") is not None:
        conditions.append(LedgerEntry.created_at < filters["end"])
    for name in ("key_id", "model", "status", "project_id", "user_id"):
        if filters.get(name) is not None:
            conditions.append(getattr(LedgerEntry, name) == filters[name])
    for condition in conditions:
        query = query.where(condition)
    return query


def page(
    filters: dict[str, Any],
    limit: int,
    after: tuple[int, str] | None,
    tenant_id: str | None,
    key_ids: Any = None,
) -> tuple[list[dict[str, Any]], bool]:
    """Newest first: a keyset page after (created_at, id) of `after`."""
    query = _filtered(filters, tenant_id, key_ids)
    if after is not None:
        created, entry_id = after
        query = query.where(
            (LedgerEntry.created_at < created)
            | ((LedgerEntry.created_at == created) & (LedgerEntry.id < entry_id))
        )
    order = (LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
    rows = list(query.order_by(*order).limit(limit + 1).dicts())
    return rows[:limit], len(rows) > limit


def rows_for_export(
    filters: dict[str, Any], tenant_id: str | None, key_ids: Any = None
) -> Iterator[dict[str, Any]]:
    """Every row of the range, oldest first, a page at a time (each page its own query)."""
    after: tuple[int, str] | None = None
    while True:
        query = _filtered(filters, tenant_id, key_ids)
        if after is not None:
            query = query.where(
                (LedgerEntry.created_at > after[0])
                | ((LedgerEntry.created_at == after[0]) & (LedgerEntry.id > after[1]))
            )
        order = (LedgerEntry.created_at.asc(), LedgerEntry.id.asc())
        with db.connection_context():
            rows = list(query.order_by(*order).limit(EXPORT_PAGE).dicts())
        yield from rows
        if len(rows) < EXPORT_PAGE:
            return
        after = (rows[-1]["created_at"], rows[-1]["id"])


def summary(
    filters: dict[str, Any], group_by: list[str], tenant_id: str | None, key_ids: Any = None
) -> list[dict[str, Any]]:
    """Requests, tokens and cost grouped by `group_by` (key, tenant, model, project, user, day)."""
    selected: list[Any] = []
    keys: list[Any] = []
    for name in group_by:
        if name == "day":
            # The constant written into the SQL: PostgreSQL must see the GROUP BY
            # expression as the selected one (bound parameters would differ).
            day = SQL(f'(("created_at" / {SECONDS_PER_DAY}) * {SECONDS_PER_DAY})')
            selected.append(day.alias("day"))
            keys.append(day)
        else:
            selected.extend(GROUPS[name])
            keys.extend(GROUPS[name])
    totals = [
        fn.COUNT(LedgerEntry.id).alias("requests"),
        *(fn.SUM(getattr(LedgerEntry, name)).alias(name) for name in TOTALS[1:]),
    ]
    query = _filtered(filters, tenant_id, key_ids).select(*selected, *totals)
    if keys:
        query = query.group_by(*keys).order_by(*keys)
    names = [column._alias if hasattr(column, "_alias") else column.name for column in selected]
    return [
        {
            **{name: row[name] for name in names},
            **{name: int(row[name] or 0) for name in TOTALS},
        }
        for row in query.dicts()
    ]


TOTALS = (
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_micros",
)
