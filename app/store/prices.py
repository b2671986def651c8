"""The price table: versioned, per model, for everyone ('' tenant) or one tenant.

Every `put_prices` writes a whole new version of its scope's table; the
rows of earlier versions stay, so a ledger row's `price_version` always
names the prices it was charged at. A tenant's own table, when it has one
with the model in it, wins over everyone's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from peewee import fn

from app.store.models import Price

EVERYONE = ""


@dataclass(frozen=True)
class PriceRow:
    """Micro-USD per million tokens, and the output a budget reserves when none is asked."""

    model: str
    version: int
    tenant_id: str
    input_micros: int
    cached_input_micros: int
    output_micros: int
    max_output_tokens: int | None


def current_version(tenant_id: str) -> int:
    """The newest version of a scope's table (0: it has none)."""
    return Price.select(fn.MAX(Price.version)).where(Price.tenant_id == tenant_id).scalar() or 0


def table(tenant_id: str, version: int | None = None) -> list[PriceRow]:
    """A scope's table at `version` (the newest by default), by model."""
    version = current_version(tenant_id) if version is None else version
    query = (
        Price.select()
        .where((Price.tenant_id == tenant_id) & (Price.version == version))
        .order_by(Price.model)
    )
    return [_row(price) for price in query]


def price_of(tenant_id: str, model: str) -> PriceRow | None:
    """What `model` costs a tenant now: its own table's price, else everyone's (None: unpriced)."""
    for scope in (tenant_id, EVERYONE) if tenant_id != EVERYONE else (EVERYONE,):
        version = current_version(scope)
        if not version:
            continue
        row = Price.get_or_none(
            (Price.tenant_id == scope) & (Price.version == version) & (Price.model == model)
        )
        if row is not None:
            return _row(row)
    return None


def put_prices(tenant_id: str, prices: list[dict[str, Any]]) -> int:
    """Write `prices` as the scope's next version (in the caller's write); return its number."""
    version = current_version(tenant_id) + 1
    now = int(time.time())
    rows = [
        {
            "tenant_id": tenant_id,
            "version": version,
            "model": price["model"],
            "input_micros": price["input_micros"],
            "cached_input_micros": price["cached_input_micros"],
            "output_micros": price["output_micros"],
            "max_output_tokens": price.get("max_output_tokens"),
            "created_at": now,
        }
        for price in prices
    ]
    if rows:
        Price.insert_many(rows).execute()
    return version


def _row(price: Price) -> PriceRow:
    return PriceRow(
        model=price.model,
        version=price.version,
        tenant_id=price.tenant_id,
        input_micros=price.input_micros,
        cached_input_micros=price.cached_input_micros,
        output_micros=price.output_micros,
        max_output_tokens=price.max_output_tokens,
    )
