"""Schema migrations: numbered steps, applied in order, each once, under a lock.

The schema is a history, not a snapshot: `MIGRATIONS` lists every step
since the first release, and the `schema_version` table records those that
ran. `migrate` applies what is pending, one step per transaction, each
taken under a lock that every worker of every node contends for (SQLite's
write lock; a PostgreSQL advisory lock): whoever takes it first applies the
step, and the others, once they have the lock, find it recorded and go on.
SQLite and PostgreSQL both roll a failed step back whole, DDL included.

A database the first release made has its tables but no `schema_version`;
step 1 creates those tables only where missing, so it is recorded and the
later steps apply on top.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from peewee import Database, OperationalError, PostgresqlDatabase, ProgrammingError

from app.store.migrations import (
    m001_first_release,
    m002_operations,
    m003_owners,
    m004_tenancy,
    m005_limits,
    m006_admin_tokens,
    m007_scim_users,
    m008_budget_alerts,
    m009_scim_deprovisioned,
    m010_files,
    m011_vector_stores,
    m012_prompts,
)
from app.store.models import db
from app.store.writes import write_transaction

VERSION_TABLE = "schema_version"
CREATE_VERSION_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
    "(version INTEGER PRIMARY KEY, name VARCHAR(64) NOT NULL, applied_at BIGINT NOT NULL)"
)
# Another worker may hold the lock for a long step (a large table copied):
# wait for it rather than fail the start.
LOCK_WAIT_SECONDS = 600.0
ADVISORY_LOCK_KEY = 7_355_608_001  # any constant: every gateway on the database uses it

__all__ = ["LATEST", "MIGRATIONS", "SchemaError", "applied_versions", "migrate", "pending"]


class SchemaError(RuntimeError):
    """The store's schema cannot be used by this release as it is."""


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    apply: Callable[[Database], None]


MIGRATIONS = (
    Migration(1, "first release", m001_first_release.apply),
    Migration(2, "retention, background leases, sweeps", m002_operations.apply),
    Migration(3, "tenants and owners; items' parent and slot", m003_owners.apply),
    Migration(4, "projects; tenants, keys, audit log, idempotent replays", m004_tenancy.apply),
    Migration(
        5, "budgets, reservations, rate windows, prices, the usage ledger", m005_limits.apply
    ),
    Migration(6, "admin tokens", m006_admin_tokens.apply),
    Migration(7, "SCIM users", m007_scim_users.apply),
    Migration(8, "budget alerts", m008_budget_alerts.apply),
    Migration(9, "deprovisioned SCIM users", m009_scim_deprovisioned.apply),
    Migration(10, "files", m010_files.apply),
    Migration(11, "vector stores, their files, batches and chunks", m011_vector_stores.apply),
    Migration(12, "prompts and their versions", m012_prompts.apply),
)
LATEST = MIGRATIONS[-1].number


def applied_versions() -> set[int]:
    """The numbers of the steps this database records (none before step 1 ran)."""
    try:
        with db.atomic():  # on PostgreSQL a failed read must not end the outer transaction
            cursor = db.execute_sql(f"SELECT version FROM {VERSION_TABLE}")
            return {row[0] for row in cursor.fetchall()}
    except (OperationalError, ProgrammingError):  # no such table yet
        return set()


def pending() -> list[Migration]:
    """The steps this database has not run yet; refuse a schema newer than this release."""
    applied = applied_versions()
    newer = sorted(number for number in applied if number > LATEST)
    if newer:
        raise SchemaError(
            f"the store's schema is at version {newer[-1]}, newer than this release "
            f"knows ({LATEST}): run the release that migrated it, or restore a backup"
        )
    return [migration for migration in MIGRATIONS if migration.number not in applied]


def migrate() -> list[Migration]:
    """Apply every pending step, each in its own locked transaction; return those applied here."""
    with db.connection_context():
        # SQLite: the write transaction is the lock (BEGIN IMMEDIATE, waited for).
        return [
            migration
            for migration in pending()
            if write_transaction(lambda m=migration: _apply(m), wait=LOCK_WAIT_SECONDS)
        ]


def _apply(migration: Migration) -> bool:
    """Apply `migration` unless another gateway did while this one waited for the lock."""
    if isinstance(db.obj, PostgresqlDatabase):
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
    db.execute_sql(CREATE_VERSION_TABLE)
    if migration.number in applied_versions():
        return False
    migration.apply(db.obj)
    db.execute_sql(
        f"INSERT INTO {VERSION_TABLE} (version, name, applied_at) "
        f"VALUES ({db.param}, {db.param}, {db.param})",
        (migration.number, migration.name, int(time.time())),
    )
    return True
