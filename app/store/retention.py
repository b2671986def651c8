"""Retention: what the store still shows, and the batches that remove the rest.

With a TTL (`GATEWAY_STORE_TTL`), a stored response older than it, and a
conversation that had no new item for as long, is gone: every read
filters it out at once (app/store/scope.py asks `oldest_kept`), and the
sweep deletes it later. Background stream events go a grace period
(`GATEWAY_EVENTS_TTL`) after their response ended.

Each deletion here is one short write transaction over a bounded number of
rows, so a sweep of millions of rows never holds the write lock long; the
caller yields between batches. On SQLite the freed pages are then given
back to the file system a few at a time (`auto_vacuum=incremental`, set
for every new file; an older file needs one `VACUUM`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from peewee import SqliteDatabase

from app.config import DEFAULT_EVENTS_TTL
from app.protocol.responses.objects import TERMINAL_STATUSES
from app.store.models import (
    CONVERSATION,
    RESPONSE_SLOTS,
    GatewayLease,
    StoredConversation,
    StoredEvent,
    StoredItem,
    StoredResponse,
    db,
)
from app.store.writes import write_transaction

OWNERS_PER_BATCH = 50
ROWS_PER_BATCH = 2000
VACUUM_PAGES_PER_STEP = 256  # 1 MB of 4 KB pages per write transaction


@dataclass(frozen=True)
class Policy:
    """How long the store keeps what (seconds); `ttl` None keeps responses forever."""

    ttl: float | None = None
    events_ttl: float = DEFAULT_EVENTS_TTL


_policy = Policy()


def configure(policy: Policy) -> None:
    """Set the retention every read and sweep of this process follows."""
    global _policy
    _policy = policy


def policy() -> Policy:
    return _policy


def oldest_kept() -> int | None:
    """The oldest time (epoch seconds) a stored object may have and still be shown."""
    return None if _policy.ttl is None else int(time.time() - _policy.ttl)


def expire_responses(limit: int = OWNERS_PER_BATCH) -> int:
    """Delete up to `limit` expired, finished responses with their items and events."""
    oldest = oldest_kept()
    if oldest is None:
        return 0
    ids = _ids(
        StoredResponse.select(StoredResponse.id)
        .where((StoredResponse.created_at < oldest) & StoredResponse.status.in_(TERMINAL_STATUSES))
        .order_by(StoredResponse.created_at)
        .limit(limit)
    )
    for parent in ids:
        _delete_in_batches(StoredItem, StoredItem.seq, _items_of(parent, RESPONSE_SLOTS))
        _delete_events_of(parent)
    if ids:
        write_transaction(
            lambda: StoredResponse.delete().where(StoredResponse.id.in_(ids)).execute()
        )
    return len(ids)


def expire_conversations(limit: int = OWNERS_PER_BATCH) -> int:
    """Delete up to `limit` conversations idle past the TTL, with their items."""
    oldest = oldest_kept()
    if oldest is None:
        return 0
    ids = _ids(
        StoredConversation.select(StoredConversation.id)
        .where(StoredConversation.updated_at < oldest)
        .limit(limit)
    )
    for parent in ids:
        _delete_in_batches(StoredItem, StoredItem.seq, _items_of(parent, (CONVERSATION,)))
    if ids:
        write_transaction(
            lambda: StoredConversation.delete().where(StoredConversation.id.in_(ids)).execute()
        )
    return len(ids)


def prune_events(limit: int = OWNERS_PER_BATCH) -> int:
    """Delete the stream events of up to `limit` responses that ended a grace period ago."""
    ended_before = int(time.time() - _policy.events_ttl)
    ids = _ids(
        StoredEvent.select(StoredEvent.response_id)
        .join(StoredResponse, on=StoredResponse.id == StoredEvent.response_id)
        .where(
            StoredResponse.status.in_(TERMINAL_STATUSES)
            & (StoredResponse.updated_at < ended_before)
        )
        .distinct()
        .limit(limit)
    )
    for parent in ids:
        _delete_events_of(parent)
    return len(ids)


def events_pruned(response_id: str) -> bool:
    """Whether a response's stream events are gone because it ended past the grace period."""
    ended_before = int(time.time() - _policy.events_ttl)
    pruned = StoredResponse.select().where(
        (StoredResponse.id == response_id)
        & StoredResponse.status.in_(TERMINAL_STATUSES)
        & (StoredResponse.updated_at < ended_before)
    )
    kept = StoredEvent.select().where(StoredEvent.response_id == response_id)
    return pruned.exists() and not kept.exists()


def _ids(query: Any) -> list[str]:
    with db.connection_context():
        return [row[0] for row in query.tuples()]


def _items_of(parent_id: str, slots: tuple[str, ...]) -> Any:
    return (StoredItem.parent_id == parent_id) & StoredItem.slot.in_(slots)


def _delete_events_of(response_id: str) -> None:
    _delete_in_batches(
        StoredEvent, StoredEvent.sequence_number, StoredEvent.response_id == response_id
    )


def _delete_in_batches(model: Any, key: Any, where: Any) -> None:
    """Delete the rows of `model` matching `where`, `ROWS_PER_BATCH` per transaction."""
    while True:
        chosen = model.select(key).where(where).limit(ROWS_PER_BATCH)
        deleted = write_transaction(
            lambda chosen=chosen: model.delete().where(where & key.in_(chosen)).execute()
        )
        if deleted < ROWS_PER_BATCH:
            return
        time.sleep(0)  # a cooperative yield under gevent: other requests run between batches


def reclaim_pages() -> int:
    """Give a few of SQLite's free pages back to the file system; return how many are left."""
    if not isinstance(db.obj, SqliteDatabase):
        return 0
    # The pragma answers a row per page it frees: read to the end, or nothing commits.
    write_transaction(
        lambda: db.execute_sql(f"PRAGMA incremental_vacuum({VACUUM_PAGES_PER_STEP})").fetchall()
    )
    return free_pages()


def free_pages() -> int:
    """SQLite's pages that hold nothing (0 on PostgreSQL, which reclaims space itself)."""
    if not isinstance(db.obj, SqliteDatabase):
        return 0
    return db.execute_sql("PRAGMA freelist_count").fetchone()[0]


def incremental() -> bool:
    """Whether this SQLite file gives pages back as the sweep frees them."""
    return isinstance(db.obj, SqliteDatabase) and (
        db.execute_sql("PRAGMA auto_vacuum").fetchone()[0] == 2
    )


def vacuum() -> None:
    """Rewrite the SQLite file without its free pages, switching it to incremental vacuum."""
    db.execute_sql("PRAGMA auto_vacuum = incremental")
    db.execute_sql("VACUUM")


def take_lease(name: str, holder: str, seconds: float) -> bool:
    """Hold the lease `name` for `seconds` if it is free, expired, or already `holder`'s."""
    now = time.time()

    def take() -> bool:
        GatewayLease.insert(name=name, holder=holder, expires_at=now + seconds).on_conflict(
            conflict_target=[GatewayLease.name],
            update={GatewayLease.holder: holder, GatewayLease.expires_at: now + seconds},
            where=(GatewayLease.expires_at < now) | (GatewayLease.holder == holder),
        ).execute()
        row = GatewayLease.get(GatewayLease.name == name)
        return row.holder == holder

    return write_transaction(take)
