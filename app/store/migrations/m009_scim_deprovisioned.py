"""Migration 9: a SCIM user deleted is kept as deprovisioned, so its sign-ins stay refused."""

from __future__ import annotations

from peewee import Database, PostgresqlDatabase


def apply(database: Database) -> None:
    big = "BIGINT" if isinstance(database, PostgresqlDatabase) else "INTEGER"  # as peewee names it
    database.execute_sql(f"ALTER TABLE scim_users ADD COLUMN deleted_at {big}")
