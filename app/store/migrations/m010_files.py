"""Migration 10: uploaded files' metadata (their bytes are on disk, named by id).

The table is written out as it is at this step.
"""

from __future__ import annotations

from peewee import SQL, BigIntegerField, CharField, Database, Model

from app.auth.principal import ANONYMOUS, DEFAULT_TENANT


class StoredFile(Model):
    id = CharField(primary_key=True, max_length=80)
    filename = CharField(max_length=256)
    purpose = CharField(max_length=32)
    bytes = BigIntegerField()
    created_at = BigIntegerField()
    expires_at = BigIntegerField(null=True, index=True)
    tenant_id = CharField(max_length=64, constraints=[SQL(f"DEFAULT '{DEFAULT_TENANT}'")])
    owner_id = CharField(max_length=128, constraints=[SQL(f"DEFAULT '{ANONYMOUS}'")])
    project_id = CharField(max_length=128, null=True)

    class Meta:
        table_name = "files"
        indexes = ((("tenant_id", "owner_id", "id"), False),)


def apply(database: Database) -> None:
    with database.bind_ctx([StoredFile]):
        database.create_tables([StoredFile])
