"""/openapi.json: the OpenAPI document of the gateway's own API, built and serialized once."""

from __future__ import annotations

import json
from functools import cache
from importlib import metadata
from typing import Any

from flask import Blueprint, Response
from marshmallow import Schema, fields, validate

from app.api.files import MAX_LIST
from app.api.gateway import MAX_ADMIN_PAGE
from app.api.gateway.keys import FILTER_STATUSES
from app.api.gateway.usage import LEDGER_STATUSES
from app.api.http import MAX_PAGE, MAX_SEQUENCE_NUMBER
from app.protocol.files import EXPIRY_ANCHORS, MAX_EXPIRY, MIN_EXPIRY, PURPOSES
from app.protocol.gateway import schemas as admin
from app.protocol.prompts import CreatePrompt, SetDefault, UpdatePrompt
from app.protocol.responses.openapi import build_document
from app.protocol.responses.schemas import (
    AddItemsRequest,
    CreateConversationRequest,
    CreateResponseRequest,
    Flag,
    Integer,
    Text,
    UpdateConversationRequest,
)
from app.protocol.vector_stores import (
    FILE_STATUSES,
    AddFile,
    CreateBatch,
    CreateVectorStore,
    Search,
    UpdateFile,
    UpdateVectorStore,
)

bp = Blueprint("openapi", __name__)

TITLE = "Responses API gateway"
ADMIN_DOCUMENT = "/v1/gateway/openapi.json"
PACKAGE = "responses-gateway"


class PageQuery(Schema):
    """What `http.page_args` reads."""

    limit = Integer(validate=validate.Range(1, MAX_PAGE))
    order = Text(validate=validate.OneOf(("asc", "desc")))
    after = Text()
    before = Text()


class AdminPageQuery(PageQuery):
    """The admin plane's lists: up to 500 a page."""

    limit = Integer(validate=validate.Range(1, MAX_ADMIN_PAGE))


class KeyQuery(AdminPageQuery):
    tenant_id = Text()
    project_id = Text()
    status = Text(validate=validate.OneOf(FILTER_STATUSES))
    name_prefix = Text()


class AuditQuery(AdminPageQuery):
    """Also the time range of the ledger's reads."""

    start = Integer(validate=validate.Range(min=0))
    end = Integer(validate=validate.Range(min=0))
    actor = Text()
    resource = Text()


class LedgerQuery(AuditQuery):
    key_id = Text()
    model = Text()
    status = Text(validate=validate.OneOf(LEDGER_STATUSES))
    project_id = Text()
    user_id = Text()


class SummaryQuery(LedgerQuery):
    group_by = Text()  # comma-separated: key, tenant, model, project, user, day


class PriceQuery(Schema):
    tenant_id = Text()


class FollowQuery(Schema):
    """What retrieving a response reads: `?stream=true&starting_after=N` resumes its events."""

    stream = Flag()
    starting_after = Integer(validate=validate.Range(min=-1, max=MAX_SEQUENCE_NUMBER))


class FileListQuery(Schema):
    limit = Integer(validate=validate.Range(1, MAX_LIST))
    order = Text(validate=validate.OneOf(("asc", "desc")))
    after = Text()
    purpose = Text()


class UploadForm(Schema):
    """What `POST /v1/files` reads (app/protocol/files.py checks it)."""

    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})
    purpose = Text(required=True, validate=validate.OneOf(PURPOSES))
    expires_anchor = Text(data_key="expires_after[anchor]", validate=validate.OneOf(EXPIRY_ANCHORS))
    expires_seconds = Integer(
        data_key="expires_after[seconds]", validate=validate.Range(MIN_EXPIRY, MAX_EXPIRY)
    )


class StoreFilesQuery(PageQuery):
    filter = Text(validate=validate.OneOf(FILE_STATUSES))


class PromptQuery(Schema):
    version = Integer(validate=validate.Range(min=1))


class HealthQuery(Schema):
    """`/health?ready=1` checks the store too, as `/ready` does."""

    ready = Flag()


# Operations that reach a backend pass its 4xx refusals on; a key may not allow the model.
UPSTREAM_ERRORS = ("400", "401", "403", "404", "4XX", "5XX")
RESPONSE = "/v1/responses/{response_id}"
CONVERSATION = "/v1/conversations/{conversation_id}"
FILE = "/v1/files/{file_id}"
VECTOR_STORE = "/v1/vector_stores/{vector_store_id}"
STORE_FILE = f"{VECTOR_STORE}/files/{{file_id}}"
BATCH = f"{VECTOR_STORE}/file_batches/{{batch_id}}"
PROMPT = "/v1/prompts/{prompt_id}"
# The admin plane: a role or scope may refuse; a POST may conflict; a PATCH may be stale.
ADMIN_READ = ("400", "401", "403", "404", "5XX")
ADMIN_WRITE = ("400", "401", "403", "404", "409", "5XX")
ADMIN_PATCH = (*ADMIN_WRITE, "412")
TENANT = "/v1/gateway/tenants/{tenant_id}"
KEY = "/v1/gateway/keys/{key_id}"
BUDGET = "/v1/gateway/budgets/{budget_id}"
ADMIN_PATHS: dict[str, dict[str, Any]] = {
    "/v1/gateway/tenants": {
        "post": {
            "summary": "Create a tenant",
            "body": admin.CreateTenant,
            "errors": ADMIN_WRITE,
            "object_statuses": ("201",),
        },
        "get": {"summary": "List tenants", "query": AdminPageQuery, "errors": ADMIN_READ},
    },
    TENANT: {
        "get": {"summary": "Retrieve a tenant", "errors": ADMIN_READ},
        "patch": {"summary": "Update a tenant", "body": admin.UpdateTenant, "errors": ADMIN_PATCH},
        "delete": {"summary": "Delete a tenant", "errors": ADMIN_WRITE},
    },
    "/v1/gateway/keys": {
        "post": {
            "summary": "Create a virtual key (its secret is shown once)",
            "body": admin.CreateKey,
            "errors": ADMIN_WRITE,
            "object_statuses": ("201",),
        },
        "get": {"summary": "List virtual keys", "query": KeyQuery, "errors": ADMIN_READ},
    },
    KEY: {
        "get": {"summary": "Retrieve a virtual key", "errors": ADMIN_READ},
        "patch": {
            "summary": "Update a virtual key",
            "body": admin.UpdateKey,
            "errors": ADMIN_PATCH,
        },
        "delete": {"summary": "Delete a virtual key", "errors": ADMIN_WRITE},
    },
    f"{KEY}/rotate": {
        "post": {
            "summary": "Rotate a key's secret",
            "body": admin.RotateKey,
            "errors": ADMIN_WRITE,
        },
    },
    f"{KEY}/revoke-previous": {
        "post": {"summary": "End a rotation's grace period", "errors": ADMIN_WRITE},
    },
    "/v1/gateway/audit": {
        "get": {"summary": "List the audit log", "query": AuditQuery, "errors": ADMIN_READ},
    },
    "/v1/gateway/budgets": {
        "post": {
            "summary": "Create a shared budget",
            "body": admin.CreateBudget,
            "errors": ADMIN_WRITE,
            "object_statuses": ("201",),
        },
        "get": {"summary": "List shared budgets", "query": AdminPageQuery, "errors": ADMIN_READ},
    },
    BUDGET: {
        "get": {"summary": "Retrieve a shared budget", "errors": ADMIN_READ},
        "patch": {
            "summary": "Update a shared budget",
            "body": admin.UpdateBudget,
            "errors": ADMIN_PATCH,
        },
        "delete": {"summary": "Delete a shared budget", "errors": ADMIN_WRITE},
    },
    "/v1/gateway/prices": {
        "get": {"summary": "The current price table", "query": PriceQuery, "errors": ADMIN_READ},
        "put": {
            "summary": "Write a new price table version",
            "body": admin.PutPrices,
            "errors": ADMIN_WRITE,
        },
    },
    "/v1/gateway/ledger": {
        "get": {"summary": "List the usage ledger", "query": LedgerQuery, "errors": ADMIN_READ},
    },
    "/v1/gateway/ledger.csv": {
        "get": {
            "summary": "Export the usage ledger as CSV",
            "query": LedgerQuery,
            "errors": ADMIN_READ,
            "text": "text/csv",
        },
    },
    "/v1/gateway/usage/summary": {
        "get": {"summary": "Usage summed by groups", "query": SummaryQuery, "errors": ADMIN_READ},
    },
    "/v1/gateway/usage/summary.csv": {
        "get": {
            "summary": "Usage summed by groups, as CSV",
            "query": SummaryQuery,
            "errors": ADMIN_READ,
            "text": "text/csv",
        },
    },
    "/v1/gateway/metrics": {
        "get": {
            "summary": "Usage and budgets as Prometheus metrics",
            "errors": ADMIN_READ,
            "text": "text/plain",
        },
    },
    "/v1/gateway/admin-tokens": {
        "post": {
            "summary": "Create an admin token (shown once)",
            "body": admin.CreateAdminToken,
            "errors": ADMIN_WRITE,
            "object_statuses": ("201",),
        },
        "get": {"summary": "List admin tokens", "query": AdminPageQuery, "errors": ADMIN_READ},
    },
    "/v1/gateway/admin-tokens/{token_id}": {
        "get": {"summary": "Retrieve an admin token", "errors": ADMIN_READ},
        "delete": {"summary": "Revoke an admin token", "errors": ADMIN_WRITE},
    },
    f"{TENANT}/usage": {
        "get": {"summary": "A tenant's usage by model", "query": AuditQuery, "errors": ADMIN_READ},
    },
}
PATHS: dict[str, dict[str, Any]] = {
    "/v1/responses": {
        "post": {
            "summary": "Create a response",
            "body": CreateResponseRequest,
            "stream": True,
            "errors": UPSTREAM_ERRORS,
        },
    },
    RESPONSE: {
        "get": {"summary": "Retrieve a response", "query": FollowQuery, "stream": True},
        "delete": {"summary": "Delete a response"},
    },
    f"{RESPONSE}/cancel": {"post": {"summary": "Cancel a background response"}},
    f"{RESPONSE}/input_items": {"get": {"summary": "List input items", "query": PageQuery}},
    "/v1/conversations": {
        "post": {"summary": "Create a conversation", "body": CreateConversationRequest},
    },
    CONVERSATION: {
        "get": {"summary": "Retrieve a conversation"},
        "post": {"summary": "Update a conversation", "body": UpdateConversationRequest},
        "delete": {"summary": "Delete a conversation"},
    },
    f"{CONVERSATION}/items": {
        "get": {"summary": "List items", "query": PageQuery},
        "post": {"summary": "Add items", "body": AddItemsRequest},
    },
    f"{CONVERSATION}/items/{{item_id}}": {
        "get": {"summary": "Retrieve an item"},
        "delete": {"summary": "Delete an item"},
    },
    "/v1/files": {
        "post": {
            "summary": "Upload a file",
            "form": UploadForm,
            "errors": ("400", "401", "507", "5XX"),
        },
        "get": {"summary": "List files", "query": FileListQuery},
    },
    FILE: {
        "get": {"summary": "Retrieve a file"},
        "delete": {"summary": "Delete a file"},
    },
    f"{FILE}/content": {
        "get": {"summary": "Retrieve a file's content", "text": "application/octet-stream"},
    },
    "/v1/vector_stores": {
        "post": {"summary": "Create a vector store", "body": CreateVectorStore},
        "get": {"summary": "List vector stores", "query": PageQuery},
    },
    VECTOR_STORE: {
        "get": {"summary": "Retrieve a vector store"},
        "post": {"summary": "Update a vector store", "body": UpdateVectorStore},
        "delete": {"summary": "Delete a vector store"},
    },
    f"{VECTOR_STORE}/search": {
        "post": {"summary": "Search a vector store", "body": Search, "errors": UPSTREAM_ERRORS},
    },
    f"{VECTOR_STORE}/files": {
        "post": {"summary": "Add a file to a vector store", "body": AddFile},
        "get": {"summary": "List a vector store's files", "query": StoreFilesQuery},
    },
    STORE_FILE: {
        "get": {"summary": "Retrieve a vector store file"},
        "post": {"summary": "Update a vector store file's attributes", "body": UpdateFile},
        "delete": {"summary": "Remove a file from a vector store"},
    },
    f"{STORE_FILE}/content": {"get": {"summary": "A vector store file's parsed content"}},
    f"{VECTOR_STORE}/file_batches": {
        "post": {"summary": "Add files to a vector store in a batch", "body": CreateBatch},
    },
    BATCH: {"get": {"summary": "Retrieve a file batch"}},
    f"{BATCH}/cancel": {"post": {"summary": "Cancel a file batch"}},
    f"{BATCH}/files": {"get": {"summary": "List a file batch's files", "query": StoreFilesQuery}},
    "/v1/prompts": {
        "post": {"summary": "Create a prompt", "body": CreatePrompt},
        "get": {"summary": "List prompts", "query": PageQuery},
    },
    PROMPT: {
        "get": {"summary": "Retrieve a prompt (at a version)", "query": PromptQuery},
        "post": {
            "summary": "Update a prompt (a new version)",
            "body": UpdatePrompt,
            "errors": ("400", "401", "404", "409", "5XX"),
        },
        "delete": {"summary": "Delete a prompt"},
    },
    f"{PROMPT}/versions": {"get": {"summary": "List a prompt's versions"}},
    f"{PROMPT}/default_version": {
        "post": {"summary": "Set a prompt's default version", "body": SetDefault},
    },
    "/v1/models": {"get": {"summary": "List models", "errors": UPSTREAM_ERRORS}},
    "/health": {
        "get": {
            "summary": "Health",
            "query": HealthQuery,
            "errors": ("400",),  # a `ready` that is not a boolean
            "object_statuses": ("200", "503"),
        },
    },
    "/ready": {
        "get": {"summary": "Readiness", "errors": (), "object_statuses": ("200", "503")},
    },
}


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document of the data plane (built on first use, then reused)."""
    return build_document(TITLE, _version(), PATHS)


@cache
def admin_document() -> dict[str, Any]:
    """The admin plane's own document: /v1/gateway/… (an admin token's routes)."""
    return build_document(f"{TITLE}: admin plane", _version(), ADMIN_PATHS)


def _version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "0+unknown"


@cache
def _serialized(admin: bool) -> str:
    return json.dumps(admin_document() if admin else document(), ensure_ascii=False)


@bp.get("/openapi.json")
def openapi() -> Response:
    return Response(_serialized(False), mimetype="application/json")


@bp.get(ADMIN_DOCUMENT)
def admin_openapi() -> Response:
    """Public, as /openapi.json is: it describes routes, it holds no data."""
    return Response(_serialized(True), mimetype="application/json")
