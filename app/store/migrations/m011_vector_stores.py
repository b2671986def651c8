"""Migration 11: vector stores, their files and file batches, and the files' chunks.

The tables are written out as they are at this step.
"""

from __future__ import annotations

from peewee import (
    SQL,
    AutoField,
    BigIntegerField,
    BlobField,
    CharField,
    CompositeKey,
    Database,
    DoubleField,
    IntegerField,
    Model,
    TextField,
)

from app.auth.principal import ANONYMOUS, DEFAULT_TENANT


class VectorStore(Model):
    id = CharField(primary_key=True, max_length=80)
    name = CharField(max_length=256, null=True)
    description = TextField(null=True)
    metadata = TextField()
    created_at = BigIntegerField()
    last_active_at = BigIntegerField()
    expires_days = IntegerField(null=True)  # expires_after: {anchor: last_active_at, days}
    expires_at = BigIntegerField(null=True)
    tenant_id = CharField(max_length=64, constraints=[SQL(f"DEFAULT '{DEFAULT_TENANT}'")])
    owner_id = CharField(max_length=128, constraints=[SQL(f"DEFAULT '{ANONYMOUS}'")])
    project_id = CharField(max_length=128, null=True)

    class Meta:
        table_name = "vector_stores"
        indexes = ((("tenant_id", "owner_id", "id"), False),)


class VectorStoreFile(Model):
    vector_store_id = CharField(max_length=80)
    file_id = CharField(max_length=80)
    created_at = BigIntegerField()
    status = CharField(max_length=16)
    last_error = TextField(null=True)  # JSON: {code, message}
    attributes = TextField(null=True)  # JSON
    chunking = TextField()  # JSON: the chunking strategy object
    usage_bytes = BigIntegerField(default=0)
    batch_id = CharField(max_length=80, null=True)
    claimed_until = DoubleField(null=True)
    tenant_id = CharField(max_length=64, constraints=[SQL(f"DEFAULT '{DEFAULT_TENANT}'")])
    owner_id = CharField(max_length=128, constraints=[SQL(f"DEFAULT '{ANONYMOUS}'")])
    project_id = CharField(max_length=128, null=True)

    class Meta:
        table_name = "vector_store_files"
        primary_key = CompositeKey("vector_store_id", "file_id")
        indexes = (
            (("status", "claimed_until"), False),
            (("file_id",), False),
            (("batch_id",), False),
        )


class VectorStoreBatch(Model):
    id = CharField(primary_key=True, max_length=80)
    vector_store_id = CharField(max_length=80, index=True)
    created_at = BigIntegerField()
    cancelled_at = BigIntegerField(null=True)
    tenant_id = CharField(max_length=64, constraints=[SQL(f"DEFAULT '{DEFAULT_TENANT}'")])
    owner_id = CharField(max_length=128, constraints=[SQL(f"DEFAULT '{ANONYMOUS}'")])
    project_id = CharField(max_length=128, null=True)

    class Meta:
        table_name = "vector_store_file_batches"


class VectorChunk(Model):
    id = AutoField()
    vector_store_id = CharField(max_length=80)
    file_id = CharField(max_length=80)
    seq = IntegerField()
    text = TextField()
    embedding = BlobField(null=True)

    class Meta:
        table_name = "vector_chunks"
        indexes = ((("vector_store_id", "file_id", "seq"), False),)


TABLES = [VectorStore, VectorStoreFile, VectorStoreBatch, VectorChunk]


def apply(database: Database) -> None:
    with database.bind_ctx(TABLES):
        database.create_tables(TABLES)
