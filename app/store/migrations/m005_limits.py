"""Migration 5: budgets, reservations, rate windows, prices and the usage ledger.

- `virtual_keys` gains `budget_id` (a shared budget) and its limits:
  `rpm_limit`, `tpm_limit`, `max_parallel_requests`.
- `budgets`: a key's own, a shared group's or a tenant's, in integer
  micro-USD, with the period they count and what is spent and reserved.
- `reservations`: what an admitted request holds until it settles.
- `rate_windows` (requests and tokens per key and minute) and
  `key_inflight` (requests of a key running now).
- `prices`: versioned, per model, for everyone or one tenant.
- `ledger`: one row per request of a virtual key.

The tables are written out as they are at this step.
"""

from __future__ import annotations

from peewee import (
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    CompositeKey,
    Database,
    IntegerField,
    Model,
    TextField,
)

KEY_COLUMNS = (
    "budget_id VARCHAR(80)",
    "rpm_limit INTEGER",
    "tpm_limit INTEGER",
    "max_parallel_requests INTEGER",
)


class Budget(Model):
    id = CharField(primary_key=True, max_length=80)
    tenant_id = CharField(max_length=64)
    kind = CharField(max_length=16)
    name = CharField(max_length=256, null=True)
    limit_micros = BigIntegerField()
    soft_limit_micros = BigIntegerField(null=True)
    period = CharField(max_length=16)
    timezone = CharField(max_length=64)
    period_start = BigIntegerField()
    spent_micros = BigIntegerField()
    reserved_micros = BigIntegerField()
    metadata = TextField()
    created_at = BigIntegerField()
    updated_at = BigIntegerField()
    version = IntegerField()

    class Meta:
        table_name = "budgets"
        indexes = ((("tenant_id", "kind"), False),)


class Reservation(Model):
    id = CharField(primary_key=True, max_length=80)
    key_id = CharField(max_length=80)
    budget_ids = TextField()
    amount_micros = BigIntegerField()
    tokens = BigIntegerField()
    window_start = BigIntegerField(null=True)
    holds_slot = BooleanField()
    created_at = BigIntegerField()
    expires_at = BigIntegerField(index=True)

    class Meta:
        table_name = "reservations"


class RateWindow(Model):
    key_id = CharField(max_length=80)
    window_start = BigIntegerField(index=True)
    requests = IntegerField()
    tokens = BigIntegerField()

    class Meta:
        table_name = "rate_windows"
        primary_key = CompositeKey("key_id", "window_start")


class KeyInflight(Model):
    key_id = CharField(primary_key=True, max_length=80)
    inflight = IntegerField()

    class Meta:
        table_name = "key_inflight"


class Price(Model):
    id = AutoField()
    tenant_id = CharField(max_length=64)
    version = IntegerField()
    model = CharField(max_length=256)
    input_micros = BigIntegerField()
    cached_input_micros = BigIntegerField()
    output_micros = BigIntegerField()
    max_output_tokens = IntegerField(null=True)
    created_at = BigIntegerField()

    class Meta:
        table_name = "prices"
        indexes = ((("tenant_id", "version", "model"), True),)


class LedgerEntry(Model):
    id = CharField(primary_key=True, max_length=80)
    created_at = BigIntegerField()
    completed_at = BigIntegerField()
    tenant_id = CharField(max_length=64)
    key_id = CharField(max_length=80)
    key_name = CharField(max_length=256)
    project_id = CharField(max_length=128, null=True)
    user_id = CharField(max_length=128, null=True)
    model = CharField(max_length=256)
    endpoint = CharField(max_length=64)
    response_id = CharField(max_length=80, null=True)
    status = CharField(max_length=32)
    http_status = IntegerField()
    input_tokens = BigIntegerField()
    cached_input_tokens = BigIntegerField()
    output_tokens = BigIntegerField()
    reasoning_tokens = BigIntegerField()
    reserved_micros = BigIntegerField()
    cost_micros = BigIntegerField()
    price_version = IntegerField(null=True)
    stream = BooleanField()
    estimated = BooleanField()
    error_code = CharField(max_length=64, null=True)

    class Meta:
        table_name = "ledger"
        indexes = (
            (("tenant_id", "created_at"), False),
            (("key_id", "created_at"), False),
        )


TABLES = [Budget, Reservation, RateWindow, KeyInflight, Price, LedgerEntry]


def apply(database: Database) -> None:
    """Add the keys' limit columns, then the tables budgets, limits and the ledger use."""
    for column in KEY_COLUMNS:
        database.execute_sql(f"ALTER TABLE virtual_keys ADD COLUMN {column}")
    with database.bind_ctx(TABLES):
        database.create_tables(TABLES)
