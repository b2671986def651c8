"""Queries about vector stores, their files, batches and chunks.

A store is read through `scope.vector_store` (the caller's own); its files,
batches and chunks are then read by the store's id. The ingesters (the
gateway's own job) claim and finish store files by bare id, outside the
scope, as runners and sweeps do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from peewee import fn

from app.auth.principal import Owner
from app.compact_json import dumps
from app.store import scope
from app.store.models import (
    StoredFile,
    VectorChunk,
    VectorStore,
    VectorStoreBatch,
    VectorStoreFile,
)
from app.store.pages import id_page
from app.store.writes import insert_rows, writes

IN_PROGRESS = "in_progress"
DAY = 24 * 3600


@writes
def create_store(owner: Owner, store: dict[str, Any], files: list[dict[str, Any]]) -> None:
    """Record a new store (`store`: its stored fields) with its first files."""
    VectorStore.insert(
        **store, tenant_id=owner.tenant_id, owner_id=owner.owner_id, project_id=owner.project_id
    ).execute()
    _insert_files(owner, files)


def get_store(owner: Owner, vector_store_id: str) -> dict[str, Any] | None:
    """The store's fields, or None if `owner` has no such store."""
    row = VectorStore.select().where(scope.vector_store(owner, vector_store_id)).dicts().first()
    return _store_fields(row) if row else None


def list_stores(
    owner: Owner, *, limit: int, order: str, after: str | None, before: str | None
) -> tuple[list[dict[str, Any]], bool]:
    query = VectorStore.select().where(scope.owned(VectorStore, owner))
    rows, more = id_page(query, VectorStore.id, limit, order, after, before)
    return [_store_fields(row) for row in rows], more


@writes
def update_store(owner: Owner, vector_store_id: str, changes: dict[str, Any]) -> bool:
    updated = VectorStore.update(**changes).where(scope.vector_store(owner, vector_store_id))
    return bool(updated.execute())


@writes
def delete_store(owner: Owner, vector_store_id: str) -> bool:
    """Forget the store, its files, batches and chunks; tell whether there was one."""
    if not VectorStore.delete().where(scope.vector_store(owner, vector_store_id)).execute():
        return False
    for model in (VectorStoreFile, VectorStoreBatch, VectorChunk):
        model.delete().where(model.vector_store_id == vector_store_id).execute()
    return True


@writes
def touch_store(vector_store_id: str, now: int) -> None:
    """The store was used now: its `last_active_at`, and its expiry counted from it."""
    VectorStore.update(
        last_active_at=now,
        expires_at=VectorStore.expires_days * DAY + now,  # NULL stays NULL: no expiry
    ).where(VectorStore.id == vector_store_id).execute()


def file_summaries(vector_store_ids: Iterable[str]) -> dict[str, tuple[dict[str, int], int]]:
    """Each store's files by status, and the bytes they take, in one query."""
    summaries: dict[str, tuple[dict[str, int], int]] = {}
    rows = (
        VectorStoreFile.select(
            VectorStoreFile.vector_store_id,
            VectorStoreFile.status,
            fn.COUNT(1),
            fn.SUM(VectorStoreFile.usage_bytes),
        )
        .where(VectorStoreFile.vector_store_id.in_(list(vector_store_ids)))
        .group_by(VectorStoreFile.vector_store_id, VectorStoreFile.status)
        .tuples()
    )
    for store_id, status, count, usage in rows:
        counts, total = summaries.get(store_id, ({}, 0))
        counts[status] = count
        summaries[store_id] = (counts, total + int(usage or 0))
    return summaries


@writes
def add_files(owner: Owner, files: list[dict[str, Any]]) -> None:
    """Add files to a store, or start them again (`in_progress`) if they are in it."""
    _replace_files(owner, files)


def get_store_file(vector_store_id: str, file_id: str) -> dict[str, Any] | None:
    row = VectorStoreFile.select().where(_file_key(vector_store_id, file_id)).dicts().first()
    return _file_fields(row) if row else None


def list_store_files(
    vector_store_id: str,
    *,
    limit: int,
    order: str,
    after: str | None,
    before: str | None,
    status: str | None,
    batch_id: str | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    query = VectorStoreFile.select().where(VectorStoreFile.vector_store_id == vector_store_id)
    if status is not None:
        query = query.where(VectorStoreFile.status == status)
    if batch_id is not None:
        query = query.where(VectorStoreFile.batch_id == batch_id)
    rows, more = id_page(query, VectorStoreFile.file_id, limit, order, after, before)
    return [_file_fields(row) for row in rows], more


@writes
def update_attributes(vector_store_id: str, file_id: str, attributes: dict | None) -> bool:
    updated = VectorStoreFile.update(attributes=_json_or_none(attributes)).where(
        _file_key(vector_store_id, file_id)
    )
    return bool(updated.execute())


@writes
def remove_file(vector_store_id: str, file_id: str) -> bool:
    """Take a file (and its chunks) out of a store; tell whether it was in it."""
    return _delete_file_rows(vector_store_id, file_id)


def remove_file_everywhere(file_id: str) -> None:
    """Take a deleted file out of every store that holds it (inside the delete's write)."""
    VectorStoreFile.delete().where(VectorStoreFile.file_id == file_id).execute()
    VectorChunk.delete().where(VectorChunk.file_id == file_id).execute()


def chunks(vector_store_ids: list[str]) -> list[tuple[str, str, int, str, bytes | None]]:
    """Every chunk of these stores' completed files: (store, file, seq, text, embedding)."""
    rows = (
        VectorChunk.select(
            VectorChunk.vector_store_id,
            VectorChunk.file_id,
            VectorChunk.seq,
            VectorChunk.text,
            VectorChunk.embedding,
        )
        .where(VectorChunk.vector_store_id.in_(vector_store_ids))
        .order_by(VectorChunk.id)
        .tuples()
    )
    return [(s, f, q, t, bytes(e) if e is not None else None) for s, f, q, t, e in rows]


def searchable_files(vector_store_ids: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """The completed files of these stores: their filename and attributes, by (store, file)."""
    rows = (
        VectorStoreFile.select(
            VectorStoreFile.vector_store_id,
            VectorStoreFile.file_id,
            VectorStoreFile.attributes,
            StoredFile.filename,
        )
        .join(StoredFile, on=(StoredFile.id == VectorStoreFile.file_id))
        .where(
            VectorStoreFile.vector_store_id.in_(vector_store_ids)
            & (VectorStoreFile.status == "completed")
        )
        .tuples()
    )
    return {
        (store_id, file_id): {"filename": name, "attributes": _loads(attributes) or {}}
        for store_id, file_id, attributes, name in rows
    }


# Batches


@writes
def create_batch(owner: Owner, batch: dict[str, Any], files: list[dict[str, Any]]) -> None:
    VectorStoreBatch.insert(
        **batch, tenant_id=owner.tenant_id, owner_id=owner.owner_id, project_id=owner.project_id
    ).execute()
    _replace_files(owner, files)


def get_batch(vector_store_id: str, batch_id: str) -> dict[str, Any] | None:
    return (
        VectorStoreBatch.select()
        .where(
            (VectorStoreBatch.id == batch_id)
            & (VectorStoreBatch.vector_store_id == vector_store_id)
        )
        .dicts()
        .first()
    )


def batch_counts(batch_id: str) -> dict[str, int]:
    rows = (
        VectorStoreFile.select(VectorStoreFile.status, fn.COUNT(1))
        .where(VectorStoreFile.batch_id == batch_id)
        .group_by(VectorStoreFile.status)
        .tuples()
    )
    return dict(rows)


@writes
def cancel_batch(batch_id: str, now: int) -> None:
    """Cancel what of the batch is not done yet (an ingester finishing one drops its work)."""
    VectorStoreBatch.update(cancelled_at=now).where(
        (VectorStoreBatch.id == batch_id) & VectorStoreBatch.cancelled_at.is_null()
    ).execute()
    VectorStoreFile.update(status="cancelled", claimed_until=None).where(
        (VectorStoreFile.batch_id == batch_id) & (VectorStoreFile.status == IN_PROGRESS)
    ).execute()


# Ingestion: the gateway's own job


def next_pending(now: float) -> tuple[str, str] | None:
    """A store file waiting for an ingester (never claimed, or its claim lapsed)."""
    row = (
        VectorStoreFile.select(VectorStoreFile.vector_store_id, VectorStoreFile.file_id)
        .where(
            (VectorStoreFile.status == IN_PROGRESS)
            & (VectorStoreFile.claimed_until.is_null() | (VectorStoreFile.claimed_until < now))
        )
        .order_by(VectorStoreFile.created_at)
        .tuples()
        .first()
    )
    return row


@writes
def claim(vector_store_id: str, file_id: str, now: float, until: float) -> dict[str, Any] | None:
    """Take a pending store file to ingest until `until`; its row and its file's, or None if
    another ingester took it first (or it is no longer pending)."""
    taken = (
        VectorStoreFile.update(claimed_until=until)
        .where(
            _file_key(vector_store_id, file_id)
            & (VectorStoreFile.status == IN_PROGRESS)
            & (VectorStoreFile.claimed_until.is_null() | (VectorStoreFile.claimed_until < now))
        )
        .execute()
    )
    if not taken:
        return None
    stored = get_store_file(vector_store_id, file_id)
    file = StoredFile.select().where(StoredFile.id == file_id).dicts().first()
    return {"store_file": stored, "file": file}


@writes
def finish(
    vector_store_id: str,
    file_id: str,
    until: float,
    chunk_rows: list[dict[str, Any]],
    usage_bytes: int,
) -> bool:
    """Store an ingested file's chunks and mark it completed, if it is still this claim's
    (not cancelled, removed or claimed anew since); tell whether it was."""
    done = (
        VectorStoreFile.update(status="completed", usage_bytes=usage_bytes, claimed_until=None)
        .where(_claimed(vector_store_id, file_id, until))
        .execute()
    )
    if not done:
        return False
    VectorChunk.delete().where(_chunks_of(vector_store_id, file_id)).execute()
    insert_rows(VectorChunk, chunk_rows)
    return True


@writes
def fail(vector_store_id: str, file_id: str, until: float, code: str, message: str) -> bool:
    failed = (
        VectorStoreFile.update(
            status="failed",
            last_error=dumps({"code": code, "message": message}),
            claimed_until=None,
        )
        .where(_claimed(vector_store_id, file_id, until))
        .execute()
    )
    return bool(failed)


def _claimed(vector_store_id: str, file_id: str, until: float) -> Any:
    return (
        _file_key(vector_store_id, file_id)
        & (VectorStoreFile.status == IN_PROGRESS)
        & (VectorStoreFile.claimed_until == until)
    )


def store_file_row(
    vector_store_id: str,
    file_id: str,
    attributes: dict | None,
    chunking: dict[str, Any],
    batch_id: str | None = None,
) -> dict[str, Any]:
    """A new store file's row, waiting for an ingester."""
    return {
        "vector_store_id": vector_store_id,
        "file_id": file_id,
        "created_at": int(time.time()),
        "status": IN_PROGRESS,
        "last_error": None,
        "attributes": _json_or_none(attributes),
        "chunking": dumps(chunking),
        "usage_bytes": 0,
        "batch_id": batch_id,
        "claimed_until": None,
    }


def _file_key(vector_store_id: str, file_id: str) -> Any:
    return (VectorStoreFile.vector_store_id == vector_store_id) & (
        VectorStoreFile.file_id == file_id
    )


def _chunks_of(vector_store_id: str, file_id: str) -> Any:
    return (VectorChunk.vector_store_id == vector_store_id) & (VectorChunk.file_id == file_id)


def _replace_files(owner: Owner, files: list[dict[str, Any]]) -> None:
    """Add store files, each in place of (and without the chunks of) what was there."""
    for row in files:
        _delete_file_rows(row["vector_store_id"], row["file_id"])
    _insert_files(owner, files)


def _insert_files(owner: Owner, files: list[dict[str, Any]]) -> None:
    whose = {
        "tenant_id": owner.tenant_id,
        "owner_id": owner.owner_id,
        "project_id": owner.project_id,
    }
    insert_rows(VectorStoreFile, [{**row, **whose} for row in files])


def _delete_file_rows(vector_store_id: str, file_id: str) -> bool:
    deleted = VectorStoreFile.delete().where(_file_key(vector_store_id, file_id)).execute()
    VectorChunk.delete().where(_chunks_of(vector_store_id, file_id)).execute()
    return bool(deleted)


def _store_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "metadata": _loads(row["metadata"]) or {}}


def _file_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "last_error": _loads(row["last_error"]),
        "attributes": _loads(row["attributes"]),
        "chunking": _loads(row["chunking"]),
    }


def _json_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
