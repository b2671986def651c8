"""Peewee models: stored responses, items, conversations, gateway secrets and leases.

Items of every parent (a response's input, its output, a conversation) live
in one table ordered by `seq`, so a chain or a conversation is read back in
one query and paged by item id; `slot` says which list of its parent an
item is in. Every stored object carries its `tenant_id` and `owner_id`
(app/auth/principal.py: `Owner`), and every read is scoped to one
(app/store/scope.py). The tables are made by the migrations
(app/store/migrations/), which must end where these models are: a test
compares the two.
"""

from __future__ import annotations

from peewee import (
    SQL,
    AutoField,
    BigIntegerField,
    CharField,
    CompositeKey,
    DatabaseProxy,
    DoubleField,
    IntegerField,
    Model,
    TextField,
)

from app.auth.principal import ANONYMOUS, DEFAULT_TENANT

db = DatabaseProxy()
ID_LENGTH = 80
# The lists of its parent an item is in (`StoredItem.slot`).
INPUT, OUTPUT, CONVERSATION = "input", "output", "conversation"
RESPONSE_SLOTS = (INPUT, OUTPUT)
TENANT_LENGTH = 64
OWNER_LENGTH = 128


class BaseModel(Model):
    class Meta:
        database = db


def tenant_field() -> CharField:
    """Whose tenant a row belongs to (rows stored before tenants: the default one)."""
    return CharField(
        max_length=TENANT_LENGTH,
        default=DEFAULT_TENANT,
        constraints=[SQL(f"DEFAULT '{DEFAULT_TENANT}'")],
    )


def owner_field() -> CharField:
    """Who within the tenant owns a row (rows stored before owners: the anonymous caller)."""
    return CharField(
        max_length=OWNER_LENGTH, default=ANONYMOUS, constraints=[SQL(f"DEFAULT '{ANONYMOUS}'")]
    )


class StoredResponse(BaseModel):
    """One response object as the API returns it (`body` is its JSON)."""

    id = CharField(primary_key=True, max_length=ID_LENGTH)
    created_at = BigIntegerField()
    status = CharField(max_length=16)
    model = CharField(max_length=256)
    previous_response_id = CharField(null=True, max_length=ID_LENGTH)
    conversation_id = CharField(null=True, max_length=ID_LENGTH)
    body = TextField()
    updated_at = BigIntegerField(null=True)  # the last change: for a finished one, its end
    lease_until = DoubleField(null=True)  # a running background response's runner is alive
    tenant_id = tenant_field()
    owner_id = owner_field()

    class Meta:
        table_name = "responses"
        indexes = ((("created_at",), False),)


# Only running background responses have a lease: the index holds just those.
StoredResponse.add_index(
    StoredResponse.index(
        StoredResponse.lease_until,
        where=StoredResponse.lease_until.is_null(False),
        name="storedresponse_lease_until",
    )
)


class StoredItem(BaseModel):
    """An input or output item of a response, or an item of a conversation."""

    seq = AutoField()
    parent_id = CharField(max_length=ID_LENGTH)  # the response or conversation it belongs to
    slot = CharField(max_length=12)  # "input", "output" or "conversation"
    item_id = CharField(max_length=ID_LENGTH, index=True)
    created_at = BigIntegerField()
    body = TextField()
    tenant_id = tenant_field()
    owner_id = owner_field()

    class Meta:
        table_name = "items"
        indexes = ((("parent_id", "slot", "seq"), False),)


class StoredConversation(BaseModel):
    id = CharField(primary_key=True, max_length=ID_LENGTH)
    created_at = BigIntegerField()
    metadata = TextField()
    updated_at = BigIntegerField(null=True, index=True)  # when its last item was added
    tenant_id = tenant_field()
    owner_id = owner_field()

    class Meta:
        table_name = "conversations"


class StoredEvent(BaseModel):
    """A stream event of a background response, kept so the stream can be resumed."""

    response_id = CharField(max_length=ID_LENGTH)
    sequence_number = IntegerField()
    body = TextField()
    tenant_id = tenant_field()
    owner_id = owner_field()

    class Meta:
        table_name = "response_events"
        primary_key = CompositeKey("response_id", "sequence_number")


class GatewaySecret(BaseModel):
    """Secrets the workers must share (e.g. the reasoning sealing key)."""

    name = CharField(primary_key=True, max_length=64)
    value = TextField()
    created_at = IntegerField()

    class Meta:
        table_name = "gateway_secrets"


class GatewayLease(BaseModel):
    """A named job only one worker (of any node) may do at a time, until `expires_at`."""

    name = CharField(primary_key=True, max_length=64)
    holder = CharField(max_length=128)
    expires_at = DoubleField()

    class Meta:
        table_name = "gateway_leases"


MODELS = [
    StoredResponse,
    StoredItem,
    StoredConversation,
    StoredEvent,
    GatewaySecret,
    GatewayLease,
]
