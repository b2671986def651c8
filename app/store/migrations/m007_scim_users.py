"""Migration 7: users provisioned over SCIM (who may sign in as an admin, with what scope).

The table is written out as it is at this step.
"""

from __future__ import annotations

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    Database,
    IntegerField,
    Model,
    TextField,
)


class ScimUser(Model):
    id = CharField(primary_key=True, max_length=80)
    user_name = CharField(max_length=256)
    name_key = CharField(max_length=256, unique=True)
    display_name = CharField(max_length=256, null=True)
    external_id = CharField(max_length=256, null=True)
    active = BooleanField()
    role = CharField(max_length=16)
    tenant_id = CharField(max_length=64, null=True)
    key_prefixes = TextField()
    created_at = BigIntegerField()
    updated_at = BigIntegerField()
    version = IntegerField()

    class Meta:
        table_name = "scim_users"


def apply(database: Database) -> None:
    with database.bind_ctx([ScimUser]):
        database.create_tables([ScimUser])
