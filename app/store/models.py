"""Peewee models: stored responses, items, conversations, gateway secrets and leases;
tenants, virtual keys and the admin plane's audit log and idempotent replays.

Items of every parent (a response's input, its output, a conversation) live
in one table ordered by `seq`, so a chain or a conversation is read back in
one query and paged by item id; `slot` says which list of its parent an
item is in. Every stored object carries its `tenant_id`, `owner_id` and
`project_id` (app/auth/principal.py: `Owner`), and every read is scoped to one
(app/store/scope.py). The tables are made by the migrations
(app/store/migrations/), which must end where these models are: a test
compares the two.
"""

from __future__ import annotations

from peewee import (
    SQL,
    AutoField,
    BigIntegerField,
    BlobField,
    BooleanField,
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
NAME_LENGTH = 256


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


def project_field() -> CharField:
    """The project a row was stored under (keys with the same project may read it)."""
    return CharField(max_length=OWNER_LENGTH, null=True)


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
    project_id = project_field()

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
    project_id = project_field()

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
    project_id = project_field()

    class Meta:
        table_name = "conversations"


class StoredEvent(BaseModel):
    """A stream event of a background response, kept so the stream can be resumed."""

    response_id = CharField(max_length=ID_LENGTH)
    sequence_number = IntegerField()
    body = TextField()
    tenant_id = tenant_field()
    owner_id = owner_field()
    project_id = project_field()

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


class Tenant(BaseModel):
    """A team sharing the gateway: its keys, stored objects and spend are its own."""

    id = CharField(primary_key=True, max_length=TENANT_LENGTH)
    name = CharField(max_length=NAME_LENGTH)
    status = CharField(max_length=16)  # active or disabled
    metadata = TextField()
    created_at = BigIntegerField()
    updated_at = BigIntegerField()
    version = IntegerField()

    class Meta:
        table_name = "tenants"


class VirtualKey(BaseModel):
    """A client's key to the gateway: found by `lookup_id`, checked by its secret's HMAC."""

    id = CharField(primary_key=True, max_length=ID_LENGTH)
    lookup_id = CharField(max_length=16, unique=True)
    tenant_id = CharField(max_length=TENANT_LENGTH)
    name = CharField(max_length=NAME_LENGTH)
    project_id = CharField(max_length=OWNER_LENGTH, null=True)
    user_id = CharField(max_length=OWNER_LENGTH, null=True)
    allowed_models = TextField(null=True)  # a JSON list of globs; null: every model
    metadata = TextField()
    status = CharField(max_length=16)  # active or disabled (expired is read off expires_at)
    expires_at = BigIntegerField(null=True)
    secret_hash = CharField(max_length=64)
    last4 = CharField(max_length=4)
    # After a rotation with a grace period, the secret before it works until then.
    previous_hash = CharField(max_length=64, null=True)
    previous_expires_at = BigIntegerField(null=True)
    rotation_id = CharField(max_length=ID_LENGTH, null=True)
    rotated_at = BigIntegerField(null=True)
    created_at = BigIntegerField()
    updated_at = BigIntegerField()
    deleted_at = BigIntegerField(null=True)  # deleted keys stay, for the ledger's names
    version = IntegerField()
    budget_id = CharField(max_length=ID_LENGTH, null=True)  # a shared budget it also counts in
    rpm_limit = IntegerField(null=True)
    tpm_limit = IntegerField(null=True)
    max_parallel_requests = IntegerField(null=True)

    class Meta:
        table_name = "virtual_keys"


# A name is unique among a tenant's keys that are not deleted.
VirtualKey.add_index(
    VirtualKey.index(
        VirtualKey.tenant_id,
        VirtualKey.name,
        unique=True,
        where=VirtualKey.deleted_at.is_null(),
        name="virtualkey_tenant_id_name",
    )
)


class AuthVersion(BaseModel):
    """One row whose number every change of a key or tenant raises: workers' caches follow it."""

    id = IntegerField(primary_key=True)
    version = BigIntegerField()

    class Meta:
        table_name = "auth_version"


class AuditEntry(BaseModel):
    """One admin action: who, what, on which object, the fields it changed (never secrets)."""

    id = CharField(primary_key=True, max_length=ID_LENGTH)
    created_at = BigIntegerField(index=True)
    tenant_id = CharField(max_length=TENANT_LENGTH, null=True)
    actor = CharField(max_length=NAME_LENGTH)
    action = CharField(max_length=64)
    resource_type = CharField(max_length=32)
    resource_id = CharField(max_length=ID_LENGTH)
    diff = TextField()
    request_id = CharField(max_length=ID_LENGTH)

    class Meta:
        table_name = "audit_log"


class IdempotentReplay(BaseModel):
    """An admin request sent with an Idempotency-Key, and its answer, sealed, for 24 hours."""

    actor = CharField(max_length=NAME_LENGTH)
    key = CharField(max_length=NAME_LENGTH)
    body_sha256 = CharField(max_length=64)
    status = IntegerField(null=True)  # null while the first request runs
    sealed = TextField(null=True)  # the answer's body, encrypted with the server's key
    expires_at = BigIntegerField(index=True)

    class Meta:
        table_name = "idempotent_replays"
        primary_key = CompositeKey("actor", "key")


class Budget(BaseModel):
    """Micro-USD a key, a shared group of keys or a tenant may spend per period."""

    id = CharField(primary_key=True, max_length=ID_LENGTH)  # key:vk_…, tenant:…, bud_…
    tenant_id = tenant_field()
    kind = CharField(max_length=16)  # key, group or tenant
    name = CharField(max_length=NAME_LENGTH, null=True)
    limit_micros = BigIntegerField()
    soft_limit_micros = BigIntegerField(null=True)
    period = CharField(max_length=16)  # none, daily, weekly, monthly
    timezone = CharField(max_length=64)
    period_start = BigIntegerField()  # of the period `spent_micros` counts
    spent_micros = BigIntegerField()
    reserved_micros = BigIntegerField()
    metadata = TextField()
    created_at = BigIntegerField()
    updated_at = BigIntegerField()
    version = IntegerField()
    # The highest alert told in the period that starts at `alerted_period` (ALERT_LEVELS).
    alerted_level = IntegerField(default=0, constraints=[SQL("DEFAULT 0")])
    alerted_period = BigIntegerField(default=-1, constraints=[SQL("DEFAULT -1")])

    class Meta:
        table_name = "budgets"
        indexes = ((("tenant_id", "kind"), False),)


class Reservation(BaseModel):
    """What an admitted request holds (budget, parallel slot) until it settles or expires."""

    id = CharField(primary_key=True, max_length=ID_LENGTH)
    key_id = CharField(max_length=ID_LENGTH)
    budget_ids = TextField()  # comma-separated
    amount_micros = BigIntegerField()
    tokens = BigIntegerField()
    window_start = BigIntegerField(null=True)
    holds_slot = BooleanField()
    created_at = BigIntegerField()
    expires_at = BigIntegerField(index=True)

    class Meta:
        table_name = "reservations"


class RateWindow(BaseModel):
    """A key's requests and tokens in one minute."""

    key_id = CharField(max_length=ID_LENGTH)
    window_start = BigIntegerField(index=True)
    requests = IntegerField()
    tokens = BigIntegerField()

    class Meta:
        table_name = "rate_windows"
        primary_key = CompositeKey("key_id", "window_start")


class KeyInflight(BaseModel):
    """How many requests of a key run now."""

    key_id = CharField(primary_key=True, max_length=ID_LENGTH)
    inflight = IntegerField()

    class Meta:
        table_name = "key_inflight"


class Price(BaseModel):
    """One model's price in one version of a price table (tenant '' : everyone's)."""

    id = AutoField()
    tenant_id = CharField(max_length=TENANT_LENGTH)
    version = IntegerField()
    model = CharField(max_length=NAME_LENGTH)
    input_micros = BigIntegerField()  # per million tokens
    cached_input_micros = BigIntegerField()
    output_micros = BigIntegerField()
    max_output_tokens = IntegerField(null=True)  # what a budget reserves without max_output_tokens
    created_at = BigIntegerField()

    class Meta:
        table_name = "prices"
        indexes = ((("tenant_id", "version", "model"), True),)


class LedgerEntry(BaseModel):
    """One request of a virtual key: who, what, how it ended, what it used and cost."""

    id = CharField(primary_key=True, max_length=ID_LENGTH)
    created_at = BigIntegerField()
    completed_at = BigIntegerField()
    tenant_id = tenant_field()
    key_id = CharField(max_length=ID_LENGTH)
    key_name = CharField(max_length=NAME_LENGTH)
    project_id = CharField(max_length=OWNER_LENGTH, null=True)
    user_id = CharField(max_length=OWNER_LENGTH, null=True)
    model = CharField(max_length=NAME_LENGTH)
    endpoint = CharField(max_length=64)
    response_id = CharField(max_length=ID_LENGTH, null=True)
    status = CharField(max_length=32)
    http_status = IntegerField()
    input_tokens = BigIntegerField()
    cached_input_tokens = BigIntegerField()
    output_tokens = BigIntegerField()
    reasoning_tokens = BigIntegerField()
    reserved_micros = BigIntegerField()
    cost_micros = BigIntegerField()
    price_version = IntegerField(null=True)
    stream = BooleanField()
    estimated = BooleanField()  # the backend reported no usage: counted from the output
    error_code = CharField(max_length=64, null=True)

    class Meta:
        table_name = "ledger"
        indexes = (
            (("tenant_id", "created_at"), False),
            (("key_id", "created_at"), False),
        )


class AdminToken(BaseModel):
    """An admin token made through the API: its role and scope; only its secret's HMAC."""

    id = CharField(primary_key=True, max_length=ID_LENGTH)
    lookup_id = CharField(max_length=16, unique=True)
    name = CharField(max_length=NAME_LENGTH)
    role = CharField(max_length=16)  # viewer or admin
    tenant_id = CharField(max_length=TENANT_LENGTH, null=True)  # null: every tenant
    key_prefixes = TextField()  # a JSON list; empty: every key of its tenants
    secret_hash = CharField(max_length=64)
    last4 = CharField(max_length=4)
    created_by = CharField(max_length=NAME_LENGTH)
    created_at = BigIntegerField()
    expires_at = BigIntegerField(null=True)
    revoked_at = BigIntegerField(null=True)

    class Meta:
        table_name = "admin_tokens"


class ScimUser(BaseModel):
    """A person provisioned over SCIM: whether, and as what, they may sign in as an admin."""

    id = CharField(primary_key=True, max_length=ID_LENGTH)
    user_name = CharField(max_length=NAME_LENGTH)
    name_key = CharField(max_length=NAME_LENGTH, unique=True)  # user_name, casefolded
    display_name = CharField(max_length=NAME_LENGTH, null=True)
    external_id = CharField(max_length=NAME_LENGTH, null=True)
    active = BooleanField()
    role = CharField(max_length=16)
    tenant_id = CharField(max_length=TENANT_LENGTH, null=True)  # null: every tenant
    key_prefixes = TextField()  # a JSON list
    created_at = BigIntegerField()
    updated_at = BigIntegerField()
    version = IntegerField()
    deleted_at = BigIntegerField(null=True)  # deleted over SCIM: its sign-ins stay refused

    class Meta:
        table_name = "scim_users"


class StoredFile(BaseModel):
    """An uploaded file's metadata; its bytes are on disk (app/store/blobs.py), named by id."""

    id = CharField(primary_key=True, max_length=ID_LENGTH)
    filename = CharField(max_length=NAME_LENGTH)
    purpose = CharField(max_length=32)
    bytes = BigIntegerField()
    created_at = BigIntegerField()
    expires_at = BigIntegerField(null=True, index=True)  # None: kept until deleted
    tenant_id = tenant_field()
    owner_id = owner_field()
    project_id = project_field()

    class Meta:
        table_name = "files"
        indexes = ((("tenant_id", "owner_id", "id"), False),)


class VectorStore(BaseModel):
    """A vector store: its files are `VectorStoreFile` rows, their chunks `VectorChunk` rows."""

    id = CharField(primary_key=True, max_length=ID_LENGTH)
    name = CharField(max_length=NAME_LENGTH, null=True)
    description = TextField(null=True)
    metadata = TextField()
    created_at = BigIntegerField()
    last_active_at = BigIntegerField()
    expires_days = IntegerField(null=True)  # expires_after: {anchor: last_active_at, days}
    expires_at = BigIntegerField(null=True)
    tenant_id = tenant_field()
    owner_id = owner_field()
    project_id = project_field()

    class Meta:
        table_name = "vector_stores"
        indexes = ((("tenant_id", "owner_id", "id"), False),)


class VectorStoreFile(BaseModel):
    """A file in a vector store, and how its ingestion went (`status`, `last_error`).

    A row `in_progress` whose `claimed_until` has passed (or was never set)
    is waiting for an ingester; one that claims it sets `claimed_until` a
    lease ahead, so a worker that dies mid-file leaves it to another.
    """

    vector_store_id = CharField(max_length=ID_LENGTH)
    file_id = CharField(max_length=ID_LENGTH)
    created_at = BigIntegerField()
    status = CharField(max_length=16)
    last_error = TextField(null=True)  # JSON: {code, message}
    attributes = TextField(null=True)  # JSON
    chunking = TextField()  # JSON: the chunking strategy object
    usage_bytes = BigIntegerField(default=0)
    batch_id = CharField(max_length=ID_LENGTH, null=True)
    claimed_until = DoubleField(null=True)
    tenant_id = tenant_field()
    owner_id = owner_field()
    project_id = project_field()

    class Meta:
        table_name = "vector_store_files"
        primary_key = CompositeKey("vector_store_id", "file_id")
        indexes = (
            (("status", "claimed_until"), False),
            (("file_id",), False),
            (("batch_id",), False),
        )


class VectorStoreBatch(BaseModel):
    id = CharField(primary_key=True, max_length=ID_LENGTH)
    vector_store_id = CharField(max_length=ID_LENGTH, index=True)
    created_at = BigIntegerField()
    cancelled_at = BigIntegerField(null=True)
    tenant_id = tenant_field()
    owner_id = owner_field()
    project_id = project_field()

    class Meta:
        table_name = "vector_store_file_batches"


class VectorChunk(BaseModel):
    """One chunk of a store file's text, with its embedding (float32s) when there is one."""

    id = AutoField()
    vector_store_id = CharField(max_length=ID_LENGTH)
    file_id = CharField(max_length=ID_LENGTH)
    seq = IntegerField()
    text = TextField()
    embedding = BlobField(null=True)

    class Meta:
        table_name = "vector_chunks"
        indexes = ((("vector_store_id", "file_id", "seq"), False),)


class Prompt(BaseModel):
    """A prompt; its templates are `PromptVersion` rows, numbered from 1."""

    id = CharField(primary_key=True, max_length=ID_LENGTH)
    name = CharField(max_length=NAME_LENGTH)
    description = TextField(null=True)
    metadata = TextField()
    created_at = BigIntegerField()
    default_version = IntegerField()
    latest_version = IntegerField()
    tenant_id = tenant_field()
    owner_id = owner_field()
    project_id = project_field()

    class Meta:
        table_name = "prompts"
        indexes = ((("tenant_id", "owner_id", "id"), False),)


class PromptVersion(BaseModel):
    prompt_id = CharField(max_length=ID_LENGTH)
    version = IntegerField()
    template = TextField()
    created_at = BigIntegerField()

    class Meta:
        table_name = "prompt_versions"
        primary_key = CompositeKey("prompt_id", "version")


MODELS = [
    StoredResponse,
    StoredItem,
    StoredConversation,
    StoredEvent,
    GatewaySecret,
    GatewayLease,
    Tenant,
    VirtualKey,
    AuthVersion,
    AuditEntry,
    IdempotentReplay,
    Budget,
    Reservation,
    RateWindow,
    KeyInflight,
    Price,
    LedgerEntry,
    AdminToken,
    ScimUser,
    StoredFile,
    VectorStore,
    VectorStoreFile,
    VectorStoreBatch,
    VectorChunk,
    Prompt,
    PromptVersion,
]
