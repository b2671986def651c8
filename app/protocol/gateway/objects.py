"""The admin plane's objects as the API returns them, built from the store's rows."""

from __future__ import annotations

from typing import Any

from app.auth.tokens import token_prefix

# Fields of a key that are never shown, nor written to the audit log.
SECRET_FIELDS = ("secret_hash", "previous_hash", "lookup_id")


def tenant_object(tenant: Any) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "object": "gateway.tenant",
        "name": tenant.name,
        "status": tenant.status,
        "metadata": tenant.metadata,
        "created_at": tenant.created_at,
        "updated_at": tenant.updated_at,
        "version": tenant.version,
    }


def key_object(key: Any, status: str) -> dict[str, Any]:
    """A key as an admin sees it: never its secret, only what tells it apart."""
    return {
        "id": key.id,
        "object": "gateway.key",
        "name": key.name,
        "tenant_id": key.tenant_id,
        "project_id": key.project_id,
        "user_id": key.user_id,
        "allowed_models": None if key.allowed_models is None else list(key.allowed_models),
        "expires_at": key.expires_at,
        "metadata": key.metadata,
        "token_prefix": token_prefix(key.lookup_id),
        "last4": key.last4,
        "status": status,
        "rotation_id": key.rotation_id,
        "rotated_at": key.rotated_at,
        "previous_secret_expires_at": key.previous_expires_at,
        "budget_id": key.budget_id,
        "rpm_limit": key.rpm_limit,
        "tpm_limit": key.tpm_limit,
        "max_parallel_requests": key.max_parallel_requests,
        "created_at": key.created_at,
        "updated_at": key.updated_at,
        "version": key.version,
    }


def deleted_object(object_id: str, kind: str) -> dict[str, Any]:
    return {"id": object_id, "object": f"gateway.{kind}.deleted", "deleted": True}


def usd(micros: int | None) -> float | None:
    """Integer micro-USD as the USD number the API shows."""
    return None if micros is None else micros / 1_000_000


def budget_fields(budget: Any) -> dict[str, Any]:
    """What a key, tenant or shared budget shows of its budget (all null: it has none)."""
    if budget is None:
        return {
            "max_budget_usd": None,
            "soft_budget_usd": None,
            "budget_period": None,
            "budget_timezone": None,
            "usage": None,
        }
    return {
        "max_budget_usd": usd(budget.limit_micros),
        "soft_budget_usd": usd(budget.soft_limit_micros),
        "budget_period": budget.period,
        "budget_timezone": budget.timezone,
        "usage": {
            "period_start": budget.period_start,
            "period_spend_usd": usd(budget.spent_micros),
            "reserved_usd": usd(budget.reserved_micros),
        },
    }


def budget_object(budget: Any) -> dict[str, Any]:
    return {
        "id": budget.id,
        "object": "gateway.budget",
        "name": budget.name,
        "tenant_id": budget.tenant_id,
        **budget_fields(budget),
        "metadata": budget.metadata,
        "created_at": budget.created_at,
        "updated_at": budget.updated_at,
        "version": budget.version,
    }


def price_table_object(tenant_id: str | None, version: int, rows: list[Any]) -> dict[str, Any]:
    return {
        "object": "gateway.price_table",
        "tenant_id": tenant_id,
        "version": version,
        "data": [
            {
                "model": row.model,
                "input_micros_per_million": row.input_micros,
                "cached_input_micros_per_million": row.cached_input_micros,
                "output_micros_per_million": row.output_micros,
                "max_output_tokens": row.max_output_tokens,
            }
            for row in rows
        ],
    }


def ledger_entry_object(row: dict[str, Any]) -> dict[str, Any]:
    entry = {name: value for name, value in row.items() if not name.endswith("_micros")}
    entry["stream"], entry["estimated"] = bool(row["stream"]), bool(row["estimated"])
    return {
        "object": "gateway.ledger_entry",
        **entry,
        "reserved_usd": usd(row["reserved_micros"]),
        "cost_usd": usd(row["cost_micros"]),
    }


def admin_token_object(row: Any) -> dict[str, Any]:
    """An admin token as listed: never its secret."""
    return {
        "id": row.id,
        "object": "gateway.admin_token",
        "name": row.name,
        "role": row.role,
        "tenant_id": row.tenant_id,
        "allowed_key_prefixes": list(row.key_prefixes),
        "token_prefix": f"gwa-{row.lookup_id}",
        "last4": row.last4,
        "created_by": row.created_by,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
    }
