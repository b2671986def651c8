"""Migration 2: what retention, background leases and the sweeper need.

- `responses.updated_at`: when the row last changed (for a finished
  response, when it ended), so background events can be pruned a grace
  period after their response ended. Backfilled with `created_at`.
- `responses.lease_until`: until when a background response's runner has
  promised to be alive; a later time on the clock means its worker died.
- `conversations.updated_at`: the last time an item was added, so idle
  conversations can expire. Backfilled from their newest item.
- `gateway_leases`: named leases that let one worker of one node do a
  periodic job (the sweep) while the others skip it.
- Indexes for the sweeps' range queries (the lease one holds only running
  background responses: no other insert pays for it).
"""

from __future__ import annotations

from peewee import SQL, BigIntegerField, CharField, Database, DoubleField, Model
from playhouse.migrate import SchemaMigrator, migrate

BACKFILL_CONVERSATIONS = """
UPDATE conversations SET updated_at = COALESCE(
    (SELECT MAX(i.created_at) FROM items i
     WHERE i.owner_id = conversations.id AND i.role = 'conversation'),
    created_at)
"""


class GatewayLease(Model):
    name = CharField(primary_key=True, max_length=64)
    holder = CharField(max_length=128)
    expires_at = DoubleField()

    class Meta:
        table_name = "gateway_leases"


def apply(database: Database) -> None:
    """Add the columns, backfill them, add the lease table and the indexes."""
    migrator = SchemaMigrator.from_database(database)
    migrate(
        migrator.add_column("responses", "updated_at", BigIntegerField(null=True)),
        migrator.add_column("responses", "lease_until", DoubleField(null=True)),
        migrator.add_column("conversations", "updated_at", BigIntegerField(null=True)),
    )
    database.execute_sql("UPDATE responses SET updated_at = created_at")
    database.execute_sql(BACKFILL_CONVERSATIONS)
    # Named as peewee names the models' indexes (after the model, not the table).
    migrate(
        migrator.add_index("responses", ("created_at",), name="storedresponse_created_at"),
        migrator.add_index(
            "responses",
            ("lease_until",),
            where=SQL("lease_until IS NOT NULL"),
            name="storedresponse_lease_until",
        ),
        migrator.add_index("conversations", ("updated_at",), name="storedconversation_updated_at"),
    )
    with database.bind_ctx([GatewayLease]):
        database.create_tables([GatewayLease])
