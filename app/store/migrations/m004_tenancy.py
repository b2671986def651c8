"""Migration 4: tenants, virtual keys, the admin plane's audit log and idempotent replays.

- `project_id` on responses, items, conversations and response events: the
  project a row was stored under, so keys of one project can share what
  they store. Rows stored before have none.
- `tenants`, with the default tenant every earlier row belongs to.
- `virtual_keys`: names unique per tenant among keys not deleted.
- `auth_version`: one row, raised by every change of a key or a tenant.
- `audit_log` and `idempotent_replays`.

The tables are written out as they are at this step (not imported from
app/store/models.py, which moves on with later steps).
"""

from __future__ import annotations

import time

from peewee import (
    BigIntegerField,
    CharField,
    CompositeKey,
    Database,
    IntegerField,
    Model,
    TextField,
)

from app.auth.principal import DEFAULT_TENANT

OWNED_TABLES = ("responses", "items", "conversations", "response_events")


class Tenant(Model):
    id = CharField(primary_key=True, max_length=64)
    name = CharField(max_length=256)
    status = CharField(max_length=16)
    metadata = TextField()
    created_at = BigIntegerField()
    updated_at = BigIntegerField()
    version = IntegerField()

    class Meta:
        table_name = "tenants"


class VirtualKey(Model):
    id = CharField(primary_key=True, max_length=80)
    lookup_id = CharField(max_length=16, unique=True)
    tenant_id = CharField(max_length=64)
    name = CharField(max_length=256)
    project_id = CharField(max_length=128, null=True)
    user_id = CharField(max_length=128, null=True)
    allowed_models = TextField(null=True)
    metadata = TextField()
    status = CharField(max_length=16)
    expires_at = BigIntegerField(null=True)
    secret_hash = CharField(max_length=64)
    last4 = CharField(max_length=4)
    previous_hash = CharField(max_length=64, null=True)
    previous_expires_at = BigIntegerField(null=True)
    rotation_id = CharField(max_length=80, null=True)
    rotated_at = BigIntegerField(null=True)
    created_at = BigIntegerField()
    updated_at = BigIntegerField()
    deleted_at = BigIntegerField(null=True)
    version = IntegerField()

    class Meta:
        table_name = "virtual_keys"


VirtualKey.add_index(
    VirtualKey.index(
        VirtualKey.tenant_id,
        VirtualKey.name,
        unique=True,
        where=VirtualKey.deleted_at.is_null(),
        name="virtualkey_tenant_id_name",
    )
)


class AuthVersion(Model):
    id = IntegerField(primary_key=True)
    version = BigIntegerField()

    class Meta:
        table_name = "auth_version"


class AuditEntry(Model):
    id = CharField(primary_key=True, max_length=80)
    created_at = BigIntegerField(index=True)
    tenant_id = CharField(max_length=64, null=True)
    actor = CharField(max_length=256)
    action = CharField(max_length=64)
    resource_type = CharField(max_length=32)
    resource_id = CharField(max_length=80)
    diff = TextField()
    request_id = CharField(max_length=80)

    class Meta:
        table_name = "audit_log"


class IdempotentReplay(Model):
    actor = CharField(max_length=256)
    key = CharField(max_length=256)
    body_sha256 = CharField(max_length=64)
    status = IntegerField(null=True)
    sealed = TextField(null=True)
    expires_at = BigIntegerField(index=True)

    class Meta:
        table_name = "idempotent_replays"
        primary_key = CompositeKey("actor", "key")


TABLES = [Tenant, VirtualKey, AuthVersion, AuditEntry, IdempotentReplay]


def apply(database: Database) -> None:
    """Add the project column to the owned tables, then the tenancy tables and their rows."""
    for table in OWNED_TABLES:
        database.execute_sql(f"ALTER TABLE {table} ADD COLUMN project_id VARCHAR(128)")
    with database.bind_ctx(TABLES):
        database.create_tables(TABLES)
        now = int(time.time())
        Tenant.insert(
            id=DEFAULT_TENANT,
            name="Default",
            status="active",
            metadata="{}",
            created_at=now,
            updated_at=now,
            version=1,
        ).execute()
        AuthVersion.insert(id=1, version=0).execute()
