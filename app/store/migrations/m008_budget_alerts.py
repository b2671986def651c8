"""Migration 8: which of a budget's alerts (soft limit, 50/80/100 %) its period has told."""

from __future__ import annotations

from peewee import Database, PostgresqlDatabase


def apply(database: Database) -> None:
    big = "BIGINT" if isinstance(database, PostgresqlDatabase) else "INTEGER"  # as peewee names it
    database.execute_sql("ALTER TABLE budgets ADD COLUMN alerted_level INTEGER NOT NULL DEFAULT 0")
    database.execute_sql(f"ALTER TABLE budgets ADD COLUMN alerted_period {big} NOT NULL DEFAULT -1")
