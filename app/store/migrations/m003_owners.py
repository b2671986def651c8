"""Migration 3: every stored object has a tenant and an owner; the items' names say what they are.

- `tenant_id` and `owner_id` on responses, items, conversations and
  response events. Rows stored before are the default tenant's and the
  anonymous caller's, as everything was; both columns are added NOT NULL
  with that default, which neither SQLite nor PostgreSQL (11+) has to
  rewrite the table for.
- `items.owner_id`, which meant the parent object, becomes `parent_id`
  (and the new `owner_id` means who owns the item); `items.role`, which
  meant the list an item is in, becomes `slot`. Their index follows.
"""

from __future__ import annotations

from peewee import Database
from playhouse.migrate import SchemaMigrator, migrate

from app.auth.principal import ANONYMOUS, DEFAULT_TENANT

OWNED_TABLES = ("responses", "items", "conversations", "response_events")


def apply(database: Database) -> None:
    """Rename the items' columns, then give every owned table its tenant and owner."""
    migrator = SchemaMigrator.from_database(database)
    migrate(
        migrator.drop_index("items", "storeditem_owner_id_role_seq"),
        migrator.rename_column("items", "owner_id", "parent_id"),
        migrator.rename_column("items", "role", "slot"),
        migrator.add_index(
            "items", ("parent_id", "slot", "seq"), name="storeditem_parent_id_slot_seq"
        ),
    )
    for table in OWNED_TABLES:
        database.execute_sql(
            f"ALTER TABLE {table} ADD COLUMN tenant_id VARCHAR(64) NOT NULL "
            f"DEFAULT '{DEFAULT_TENANT}'"
        )
        database.execute_sql(
            f"ALTER TABLE {table} ADD COLUMN owner_id VARCHAR(128) NOT NULL DEFAULT '{ANONYMOUS}'"
        )
