"""Migration 12: prompts and their versions.

The tables are written out as they are at this step.
"""

from __future__ import annotations

from peewee import (
    SQL,
    BigIntegerField,
    CharField,
    CompositeKey,
    Database,
    IntegerField,
    Model,
    TextField,
)

from app.auth.principal import ANONYMOUS, DEFAULT_TENANT


class Prompt(Model):
    id = CharField(primary_key=True, max_length=80)
    name = CharField(max_length=256)
    description = TextField(null=True)
    metadata = TextField()
    created_at = BigIntegerField()
    default_version = IntegerField()
    latest_version = IntegerField()
    tenant_id = CharField(max_length=64, constraints=[SQL(f"DEFAULT '{DEFAULT_TENANT}'")])
    owner_id = CharField(max_length=128, constraints=[SQL(f"DEFAULT '{ANONYMOUS}'")])
    project_id = CharField(max_length=128, null=True)

    class Meta:
        table_name = "prompts"
        indexes = ((("tenant_id", "owner_id", "id"), False),)


class PromptVersion(Model):
    prompt_id = CharField(max_length=80)
    version = IntegerField()
    template = TextField()
    created_at = BigIntegerField()

    class Meta:
        table_name = "prompt_versions"
        primary_key = CompositeKey("prompt_id", "version")


TABLES = [Prompt, PromptVersion]


def apply(database: Database) -> None:
    with database.bind_ctx(TABLES):
        database.create_tables(TABLES)
