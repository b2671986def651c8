"""Use case: the Vector Stores API (stores, their files, file batches, search), as the
caller's own.

Every file named must be one of the caller's uploads (another's is a 404,
as an unknown one); a store file is added `in_progress` and the worker's
ingester woken (app/services/ingest.py). An expired store (`expires_after`
days without a search) says so in its `status` and refuses new files and
searches.
"""

from __future__ import annotations

import time
from typing import Any

from app.compact_json import dumps
from app.errors import InvalidRequest, NotFound
from app.protocol.ids import new_id
from app.protocol.responses.objects import list_object
from app.protocol.vector_stores import (
    batch_object,
    chunking_object,
    search_page,
    store_file_object,
    vector_store_object,
)
from app.services import extract
from app.services.context import RequestContext, ServiceContext
from app.services.search import search_stores
from app.store import files
from app.store import vector_stores as store

DAY = 24 * 3600


def create_store(
    services: ServiceContext, context: RequestContext, body: dict[str, Any]
) -> dict[str, Any]:
    owner, now = context.owner, int(time.time())
    store_id = new_id("vs")
    file_ids = _owned_files(context, body.get("file_ids") or [])
    chunking = chunking_object(body.get("chunking_strategy"))
    days = (body.get("expires_after") or {}).get("days")
    row = {
        "id": store_id,
        "name": body.get("name"),
        "description": body.get("description"),
        "metadata": dumps(body.get("metadata") or {}),
        "created_at": now,
        "last_active_at": now,
        "expires_days": days,
        "expires_at": now + days * DAY if days else None,
    }
    rows = [store.store_file_row(store_id, file_id, None, chunking) for file_id in file_ids]
    store.create_store(owner, row, rows)
    if rows:
        services.ingester.nudge()
    return get_store(context, store_id)


def get_store(context: RequestContext, vector_store_id: str) -> dict[str, Any]:
    row = _store(context, vector_store_id)
    counts, usage = store.file_summaries([vector_store_id]).get(vector_store_id, ({}, 0))
    return vector_store_object(row, counts, usage, int(time.time()))


def list_stores(context: RequestContext, page: dict[str, Any]) -> dict[str, Any]:
    rows, more = store.list_stores(context.owner, **page)
    summaries = store.file_summaries(row["id"] for row in rows)
    now = int(time.time())
    objects = []
    for row in rows:
        counts, usage = summaries.get(row["id"], ({}, 0))
        objects.append(vector_store_object(row, counts, usage, now))
    return list_object(objects, more)


def update_store(
    context: RequestContext, vector_store_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    row = _store(context, vector_store_id)
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = body["name"]
    if "metadata" in body:
        changes["metadata"] = dumps(body["metadata"] or {})
    if "expires_after" in body:
        days = (body["expires_after"] or {}).get("days")
        changes["expires_days"] = days
        changes["expires_at"] = row["last_active_at"] + days * DAY if days else None
    if changes:
        store.update_store(context.owner, vector_store_id, changes)
    return get_store(context, vector_store_id)


def delete_store(context: RequestContext, vector_store_id: str) -> dict[str, Any]:
    if not store.delete_store(context.owner, vector_store_id):
        raise _store_not_found(vector_store_id)
    return {"id": vector_store_id, "object": "vector_store.deleted", "deleted": True}


# Files of a store


def add_file(
    services: ServiceContext, context: RequestContext, vector_store_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    _live_store(context, vector_store_id)
    (file_id,) = _owned_files(context, [body["file_id"]], param="file_id")
    chunking = chunking_object(body.get("chunking_strategy"))
    row = store.store_file_row(vector_store_id, file_id, body.get("attributes"), chunking)
    store.add_files(context.owner, [row])
    services.ingester.nudge()
    return get_file(context, vector_store_id, file_id)


def get_file(context: RequestContext, vector_store_id: str, file_id: str) -> dict[str, Any]:
    _store(context, vector_store_id)
    row = store.get_store_file(vector_store_id, file_id)
    if row is None:
        raise _file_not_found(vector_store_id, file_id)
    return store_file_object(row)


def list_files(
    context: RequestContext,
    vector_store_id: str,
    page: dict[str, Any],
    status: str | None,
    batch_id: str | None = None,
) -> dict[str, Any]:
    _store(context, vector_store_id)
    if batch_id is not None:
        _batch(vector_store_id, batch_id)
    rows, more = store.list_store_files(vector_store_id, **page, status=status, batch_id=batch_id)
    return list_object([store_file_object(row) for row in rows], more)


def update_file(
    context: RequestContext, vector_store_id: str, file_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    get_file(context, vector_store_id, file_id)
    store.update_attributes(vector_store_id, file_id, body["attributes"])
    return get_file(context, vector_store_id, file_id)


def remove_file(context: RequestContext, vector_store_id: str, file_id: str) -> dict[str, Any]:
    """Take the file out of the store (the uploaded file itself stays)."""
    _store(context, vector_store_id)
    if not store.remove_file(vector_store_id, file_id):
        raise _file_not_found(vector_store_id, file_id)
    return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}


def file_content(
    services: ServiceContext, context: RequestContext, vector_store_id: str, file_id: str
) -> dict[str, Any]:
    """The file's text as the store read it (a page of one text part; none if it failed)."""
    row = get_file(context, vector_store_id, file_id)
    text = None
    if row["status"] == "completed":
        file = files.get_file(context.owner, file_id, int(time.time()))
        if file is not None:
            data = services.blobs.read(file_id)
            text = extract.extract_text(file["filename"], data)
    data = [{"type": "text", "text": text}] if text else []
    return {
        "object": "vector_store.file_content.page",
        "data": data,
        "has_more": False,
        "next_page": None,
    }


# File batches


def create_batch(
    services: ServiceContext, context: RequestContext, vector_store_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    _live_store(context, vector_store_id)
    shared_attributes = body.get("attributes")
    shared_chunking = body.get("chunking_strategy")
    specs = body.get("files") or [{"file_id": file_id} for file_id in body["file_ids"]]
    file_ids = _owned_files(context, [spec["file_id"] for spec in specs])
    batch_id = new_id("vsfb")
    rows = {}
    for spec, file_id in zip(specs, file_ids, strict=True):
        attributes = spec.get("attributes", shared_attributes)
        chunking = chunking_object(spec.get("chunking_strategy", shared_chunking))
        rows[file_id] = store.store_file_row(
            vector_store_id, file_id, attributes, chunking, batch_id
        )
    batch = {"id": batch_id, "vector_store_id": vector_store_id, "created_at": int(time.time())}
    store.create_batch(context.owner, batch, list(rows.values()))
    services.ingester.nudge()
    return get_batch(context, vector_store_id, batch_id)


def get_batch(context: RequestContext, vector_store_id: str, batch_id: str) -> dict[str, Any]:
    _store(context, vector_store_id)
    return batch_object(_batch(vector_store_id, batch_id), store.batch_counts(batch_id))


def cancel_batch(context: RequestContext, vector_store_id: str, batch_id: str) -> dict[str, Any]:
    get_batch(context, vector_store_id, batch_id)
    store.cancel_batch(batch_id, int(time.time()))
    return get_batch(context, vector_store_id, batch_id)


# Search


def search_store(
    services: ServiceContext, context: RequestContext, vector_store_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    _live_store(context, vector_store_id)
    query = body["query"]
    queries = [query] if isinstance(query, str) else list(query)
    results = search_stores([vector_store_id], queries, body, services.embeddings)
    return search_page(queries, results)


def _store(context: RequestContext, vector_store_id: str) -> dict[str, Any]:
    row = store.get_store(context.owner, vector_store_id)
    if row is None:
        raise _store_not_found(vector_store_id)
    return row


def _live_store(context: RequestContext, vector_store_id: str) -> dict[str, Any]:
    row = _store(context, vector_store_id)
    if row["expires_at"] is not None and row["expires_at"] <= int(time.time()):
        raise InvalidRequest(
            f"Vector store {vector_store_id} is expired.",
            param="vector_store_id",
            code="vector_store_expired",
        )
    return row


def _batch(vector_store_id: str, batch_id: str) -> dict[str, Any]:
    batch = store.get_batch(vector_store_id, batch_id)
    if batch is None:
        raise NotFound(f"No file batch found with id '{batch_id}'.", param="batch_id")
    return batch


def _owned_files(
    context: RequestContext, file_ids: list[str], param: str = "file_ids"
) -> list[str]:
    """The ids, each one of the caller's files (else a 404 naming the first that is not)."""
    found = files.files_by_id(context.owner, sorted(set(file_ids)), int(time.time()))
    for file_id in file_ids:
        if file_id not in found:
            raise NotFound(f"No file found with id '{file_id}'.", param=param)
    return file_ids


def _store_not_found(vector_store_id: str) -> NotFound:
    return NotFound(f"No vector store found with id '{vector_store_id}'.", param="vector_store_id")


def _file_not_found(vector_store_id: str, file_id: str) -> NotFound:
    return NotFound(
        f"No file found with id '{file_id}' in vector store '{vector_store_id}'.",
        param="file_id",
    )
