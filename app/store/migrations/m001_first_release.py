"""Migration 1: the tables of the first release, as it created them.

A database that release made already has them (and no `schema_version`):
they are created only where missing, so the step is recorded and the later
ones apply on top. The models are frozen copies, not app.store.models:
those describe the schema as it is now.
"""

from __future__ import annotations

from peewee import (
    AutoField,
    BigIntegerField,
    CharField,
    CompositeKey,
    Database,
    IntegerField,
    Model,
    TextField,
)

ID_LENGTH = 80


class StoredResponse(Model):
    id = CharField(primary_key=True, max_length=ID_LENGTH)
    created_at = BigIntegerField()
    status = CharField(max_length=16)
    model = CharField(max_length=256)
    previous_response_id = CharField(null=True, max_length=ID_LENGTH)
    conversation_id = CharField(null=True, max_length=ID_LENGTH)
    body = TextField()

    class Meta:
        table_name = "responses"


class StoredItem(Model):
    seq = AutoField()
    owner_id = CharField(max_length=ID_LENGTH)
    role = CharField(max_length=12)
    item_id = CharField(max_length=ID_LENGTH, index=True)
    created_at = BigIntegerField()
    body = TextField()

    class Meta:
        table_name = "items"
        indexes = ((("owner_id", "role", "seq"), False),)


class StoredConversation(Model):
    id = CharField(primary_key=True, max_length=ID_LENGTH)
    created_at = BigIntegerField()
    metadata = TextField()

    class Meta:
        table_name = "conversations"


class StoredEvent(Model):
    response_id = CharField(max_length=ID_LENGTH)
    sequence_number = IntegerField()
    body = TextField()

    class Meta:
        table_name = "response_events"
        primary_key = CompositeKey("response_id", "sequence_number")


class GatewaySecret(Model):
    name = CharField(primary_key=True, max_length=64)
    value = TextField()
    created_at = IntegerField()

    class Meta:
        table_name = "gateway_secrets"


TABLES = [StoredResponse, StoredItem, StoredConversation, StoredEvent, GatewaySecret]


def apply(database: Database) -> None:
    """Create the first release's tables and indexes where they are missing."""
    with database.bind_ctx(TABLES):
        database.create_tables(TABLES, safe=True)
