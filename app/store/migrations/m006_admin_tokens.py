"""Migration 6: admin tokens kept in the database (the secret shown once, only its HMAC kept).

The table is written out as it is at this step.
"""

from __future__ import annotations

from peewee import BigIntegerField, CharField, Database, Model, TextField


class AdminToken(Model):
    id = CharField(primary_key=True, max_length=80)
    lookup_id = CharField(max_length=16, unique=True)
    name = CharField(max_length=256)
    role = CharField(max_length=16)
    tenant_id = CharField(max_length=64, null=True)
    key_prefixes = TextField()
    secret_hash = CharField(max_length=64)
    last4 = CharField(max_length=4)
    created_by = CharField(max_length=256)
    created_at = BigIntegerField()
    expires_at = BigIntegerField(null=True)
    revoked_at = BigIntegerField(null=True)

    class Meta:
        table_name = "admin_tokens"


def apply(database: Database) -> None:
    with database.bind_ctx([AdminToken]):
        database.create_tables([AdminToken])
