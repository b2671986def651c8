"""Queries about uploaded files' metadata: the caller's own, that have not expired."""

from __future__ import annotations

from typing import Any

from app.auth.principal import Owner
from app.protocol.files import file_object
from app.store import scope, vector_stores
from app.store.models import StoredFile
from app.store.pages import id_page
from app.store.writes import writes

EXPIRE_BATCH = 500


@writes
def insert_file(owner: Owner, file: dict[str, Any]) -> None:
    """Record an uploaded file (a `file` object) as `owner`'s."""
    StoredFile.insert(
        id=file["id"],
        filename=file["filename"],
        purpose=file["purpose"],
        bytes=file["bytes"],
        created_at=file["created_at"],
        expires_at=file["expires_at"],
        tenant_id=owner.tenant_id,
        owner_id=owner.owner_id,
        project_id=owner.project_id,
    ).execute()


def get_file(owner: Owner, file_id: str, now: int) -> dict[str, Any] | None:
    """The `file` object, or None if `owner` has no such file (or it expired)."""
    row = StoredFile.select().where(scope.file(owner, file_id, now)).dicts().first()
    return _object(row) if row else None


def list_files(
    owner: Owner, now: int, *, limit: int, order: str, after: str | None, purpose: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """One page of `owner`'s files (ids sort by the time they were made) and whether more
    follow `after` (an id: the page starts past it in `order`)."""
    query = StoredFile.select().where(scope.files(owner, now))
    if purpose is not None:
        query = query.where(StoredFile.purpose == purpose)
    rows, more = id_page(query, StoredFile.id, limit, order, after)
    return [_object(row) for row in rows], more


def files_by_id(owner: Owner, file_ids: list[str], now: int) -> dict[str, dict[str, Any]]:
    """`owner`'s files among these ids (that have not expired), by id."""
    rows = StoredFile.select().where(scope.files(owner, now) & StoredFile.id.in_(file_ids))
    return {row["id"]: _object(row) for row in rows.dicts()}


@writes
def delete_file(owner: Owner, file_id: str, now: int) -> bool:
    """Forget `owner`'s file, and take it out of every vector store; tell whether there was
    one."""
    if not StoredFile.delete().where(scope.file(owner, file_id, now)).execute():
        return False
    vector_stores.remove_file_everywhere(file_id)
    return True


def known_ids(file_ids: list[str]) -> set[str]:
    """Which of these ids a file row names (the sweep's check for bytes left behind)."""
    known: set[str] = set()
    for start in range(0, len(file_ids), EXPIRE_BATCH):
        batch = file_ids[start : start + EXPIRE_BATCH]
        rows = StoredFile.select(StoredFile.id).where(StoredFile.id.in_(batch)).tuples()
        known.update(file_id for (file_id,) in rows)
    return known


@writes
def expire_files(now: int) -> list[str]:
    """Forget a batch of files that expired by `now`; return their ids (to remove the bytes)."""
    expired = [
        file_id
        for (file_id,) in StoredFile.select(StoredFile.id)
        .where(StoredFile.expires_at <= now)
        .limit(EXPIRE_BATCH)
        .tuples()
    ]
    if expired:
        StoredFile.delete().where(StoredFile.id.in_(expired)).execute()
        for file_id in expired:
            vector_stores.remove_file_everywhere(file_id)
    return expired


def _object(row: dict[str, Any]) -> dict[str, Any]:
    return file_object(
        row["id"],
        row["filename"],
        row["purpose"],
        row["bytes"],
        row["created_at"],
        row["expires_at"],
    )
