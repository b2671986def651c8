"""Use cases: prices, the usage ledger, its summaries and CSV exports.

An admin reads the ledger of its scope only: its tenant, and the keys its
name prefixes reach; the scope is a condition of the SQL query, applied
before the limit. CSV is RFC 4180 (quoted as needed, CRLF) with every text
cell that a spreadsheet would run as a formula prefixed by a quote.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Any

from app.errors import InvalidRequest, NotFound, PermissionDenied
from app.protocol.gateway.objects import ledger_entry_object, price_table_object, usd
from app.services import limits
from app.services.admin import AdminContext, audit, commit_change, visible_tenant
from app.store import budgets as budgets_store
from app.store import ledger, prices, tenancy
from app.store.models import LedgerEntry, VirtualKey

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
SUMMARY_GROUPS = ("key", "tenant", "model", "project", "user", "status", "day")
OTHER_MODEL = "other"
TOKEN_KINDS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")


def _scope(context: AdminContext) -> tuple[str | None, Any]:
    """(tenant id, a subquery of key ids) an admin's reads are limited to (None: no limit)."""
    admin = context.admin
    if not admin.key_prefixes:
        return admin.tenant_id, None
    keys = VirtualKey.select(VirtualKey.id).where(
        tenancy.any_prefix(VirtualKey.name, admin.key_prefixes)
    )
    return admin.tenant_id, keys


# Prices


def get_prices(context: AdminContext, tenant_id: str | None) -> dict[str, Any]:
    scope = _price_scope(context, tenant_id)
    version = prices.current_version(scope)
    return price_table_object(tenant_id, version, prices.table(scope, version))


def _price_scope(context: AdminContext, tenant_id: str | None) -> str:
    """Everyone's table (''), or a tenant's own, which its admins may see and set."""
    if tenant_id is None:
        tenant_id = context.admin.tenant_id
        if tenant_id is None:
            return prices.EVERYONE
    visible_tenant(context, tenant_id)
    return tenant_id


def put_prices(context: AdminContext, body: dict[str, Any]) -> dict[str, Any]:
    """Write a new version of a price table; requests admitted from then on use it."""
    context.admin.require_write()
    if context.admin.key_prefixes:
        raise PermissionDenied("An admin limited to key prefixes cannot change prices.")
    tenant_id = body.get("tenant_id")
    rows = [
        {
            "model": price["model"],
            "input_micros": price["input_micros_per_million"],
            "cached_input_micros": price.get(
                "cached_input_micros_per_million", price["input_micros_per_million"]
            ),
            "output_micros": price["output_micros_per_million"],
            "max_output_tokens": price.get("max_output_tokens"),
        }
        for price in body["prices"]
    ]
    models = [row["model"] for row in rows]
    if len(set(models)) != len(models):
        raise InvalidRequest(
            "Invalid 'prices': a model is listed twice.", param="prices", code="invalid_value"
        )

    def put() -> dict[str, Any]:
        scope = _price_scope(context, tenant_id)
        version = prices.put_prices(scope, rows)
        table = price_table_object(
            tenant_id or context.admin.tenant_id, version, prices.table(scope, version)
        )
        diff = {"version": [version - 1 or None, version], "models": [None, models]}
        audit(
            context, "prices.put", ("prices", scope or "*"), scope or None, diff, int(time.time())
        )
        return table

    table = commit_change(context, put)
    limits.forget_prices()
    return table


# The ledger


def list_ledger(
    context: AdminContext, filters: dict[str, Any], limit: int, after: str | None
) -> tuple[list[dict[str, Any]], bool]:
    tenant_id, key_ids = _scope(context)
    cursor = None
    if after is not None:
        row = LedgerEntry.get_or_none(LedgerEntry.id == after)
        outside = row is not None and (
            (tenant_id is not None and row.tenant_id != tenant_id)
            or (key_ids is not None and not context.admin.sees_key(row.tenant_id, row.key_name))
        )
        if row is None or outside:
            raise NotFound(f"No ledger entry with id '{after}'.", param="after")
        cursor = (row.created_at, row.id)
    rows, more = ledger.page(filters, limit, cursor, tenant_id, key_ids)
    return [ledger_entry_object(row) for row in rows], more


def ledger_csv(context: AdminContext, filters: dict[str, Any]) -> Iterator[str]:
    """The whole range as CSV, a line at a time (the header first)."""
    tenant_id, key_ids = _scope(context)
    columns = [
        name if not name.endswith("_micros") else name.replace("_micros", "_usd")
        for name in ledger.COLUMNS
    ]
    yield _csv_line(columns)
    for row in ledger.rows_for_export(filters, tenant_id, key_ids):
        yield _csv_line(
            [
                _usd_text(row[name]) if name.endswith("_micros") else row[name]
                for name in ledger.COLUMNS
            ]
        )


def summary(
    context: AdminContext, filters: dict[str, Any], group_by: list[str]
) -> list[dict[str, Any]]:
    unknown = [name for name in group_by if name not in SUMMARY_GROUPS]
    if unknown:
        raise InvalidRequest(
            f"Invalid 'group_by': '{unknown[0]}' is not one of {', '.join(SUMMARY_GROUPS)}.",
            param="group_by",
            code="invalid_value",
        )
    tenant_id, key_ids = _scope(context)
    rows = ledger.summary(filters, group_by, tenant_id, key_ids)
    for row in rows:
        row["cost_usd"] = usd(row.pop("cost_micros"))
    return rows


def summary_columns(group_by: list[str]) -> list[str]:
    """The columns of a summary grouped by `group_by`, in order."""
    names = {
        "key": ["key_id", "key_name"],
        "tenant": ["tenant_id"],
        "project": ["project_id"],
        "user": ["user_id"],
    }
    groups = [column for name in group_by for column in names.get(name, [name])]
    return [*groups, "requests", *TOKEN_KINDS, "cost_usd"]


def summary_csv(rows: list[dict[str, Any]], columns: list[str]) -> Iterator[str]:
    """The summary as CSV: its group columns, then the totals (costs as exact decimals)."""
    yield _csv_line(columns)
    for row in rows:
        yield _csv_line(
            [
                _usd_text(round(row[name] * 1_000_000)) if name == "cost_usd" else row[name]
                for name in columns
            ]
        )


def tenant_usage(context: AdminContext, tenant_id: str, filters: dict[str, Any]) -> dict[str, Any]:
    visible_tenant(context, tenant_id)
    _, key_ids = _scope(context)
    rows = ledger.summary(filters, ["model"], tenant_id, key_ids)
    totals = ledger.summary(filters, [], tenant_id, key_ids)[0]
    for row in [*rows, totals]:
        row["cost_usd"] = usd(row.pop("cost_micros"))
    return {"object": "gateway.tenant_usage", "tenant_id": tenant_id, **totals, "by_model": rows}


def _usd_text(micros: int) -> str:
    """Micro-USD as a decimal a spreadsheet reads exactly (0.000020, not 2e-05)."""
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _csv_line(values: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([_cell(value) for value in values])
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    """A value as a CSV cell; text a spreadsheet would run as a formula gets a leading quote."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


def metrics_text(context: AdminContext, known_models: set[str], by_tenant: bool = False) -> str:
    """Prometheus text of the ledger's totals by tenant, model and status (and of budgets).

    Read from the ledger, so every worker and node agrees and nothing is
    lost at a restart. Labels stay bounded: `model` is one of the configured
    or priced models, else `other`; `tenant` (admin-made tenants) only with
    `by_tenant`; a tenant's admin sees its tenant only. No key, secret or
    user appears.
    """
    tenant_id, key_ids = _scope(context)
    rows = ledger.summary({}, ["tenant", "model", "status"], tenant_id, key_ids)
    priced = {row.model for row in prices.table(prices.EVERYONE)}
    allowed = known_models | priced
    totals: dict[tuple[str, str, str], dict[str, int]] = {}
    for row in rows:
        model = row["model"] if row["model"] in allowed else OTHER_MODEL
        labels = (row["tenant_id"] if by_tenant else "", model, row["status"])
        into = totals.setdefault(
            labels, dict.fromkeys(("requests", *TOKEN_KINDS, "cost_micros"), 0)
        )
        for name in into:
            into[name] += row[name]
    lines = [
        "# HELP gateway_usage_requests_total Requests of virtual keys, from the ledger.",
        "# TYPE gateway_usage_requests_total counter",
    ]
    for (tenant, model, status), values in sorted(totals.items()):
        labels = _labels(tenant=tenant, model=model, status=status)
        lines.append(f"gateway_usage_requests_total{labels} {values['requests']}")
    lines += [
        "# HELP gateway_usage_tokens_total Tokens of virtual keys' requests, by kind.",
        "# TYPE gateway_usage_tokens_total counter",
    ]
    for (tenant, model, status), values in sorted(totals.items()):
        for kind in TOKEN_KINDS:
            labels = _labels(
                tenant=tenant, model=model, status=status, kind=kind.removesuffix("_tokens")
            )
            lines.append(f"gateway_usage_tokens_total{labels} {values[kind]}")
    lines += [
        "# HELP gateway_usage_cost_usd_total What virtual keys' requests cost, in USD.",
        "# TYPE gateway_usage_cost_usd_total counter",
    ]
    for (tenant, model, status), values in sorted(totals.items()):
        labels = _labels(tenant=tenant, model=model, status=status)
        lines.append(f"gateway_usage_cost_usd_total{labels} {_usd_text(values['cost_micros'])}")
    lines += _budget_lines(tenant_id, by_tenant)
    return "\n".join(lines) + "\n"


def _budget_lines(tenant_id: str | None, by_tenant: bool) -> list[str]:
    """Shared and tenant budgets (not keys' own: those would be a label per key)."""
    lines = [
        "# HELP gateway_budget_usd Shared and tenant budgets: limit, spent and reserved, in USD.",
        "# TYPE gateway_budget_usd gauge",
    ]
    for budget in budgets_store.shown_budgets(tenant_id):
        for name, micros in (
            ("limit", budget.limit_micros),
            ("spent", budget.spent_micros),
            ("reserved", budget.reserved_micros),
        ):
            tenant = budget.tenant_id if by_tenant else ""
            labels = _labels(budget=budget.id, tenant=tenant, kind=budget.kind, value=name)
            lines.append(f"gateway_budget_usd{labels} {_usd_text(micros)}")
    return lines


def _labels(**labels: str) -> str:
    """`{name="value",…}`; an empty tenant is left out (the tenant label is opt-in)."""
    shown = {name: value for name, value in labels.items() if name != "tenant" or value}
    return "{" + ",".join(f'{name}="{_escaped(value)}"' for name, value in shown.items()) + "}"


def _escaped(value: str) -> str:
    """A label value as the exposition format writes it (backslash, quote, newline escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
