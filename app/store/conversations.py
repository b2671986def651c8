"""Queries about conversations and their items: the caller's own, that retention keeps."""

from __future__ import annotations

import json
import time
from typing import Any

from app.auth.principal import Owner
from app.compact_json import dumps
from app.store import scope
from app.store.models import CONVERSATION, StoredConversation, StoredItem
from app.store.responses import item_rows, touch_conversation
from app.store.writes import insert_rows, writes


@writes
def create_conversation(
    owner: Owner, conversation_id: str, metadata: dict[str, str], items: list[dict[str, Any]]
) -> dict[str, Any]:
    """Store a new conversation with its first items; return the conversation object."""
    now = int(time.time())
    StoredConversation.insert(
        id=conversation_id,
        created_at=now,
        metadata=dumps(metadata),
        updated_at=now,
        tenant_id=owner.tenant_id,
        owner_id=owner.owner_id,
        project_id=owner.project_id,
    ).execute()
    insert_rows(StoredItem, item_rows(owner, conversation_id, CONVERSATION, items, now))
    return conversation_object(conversation_id, now, metadata)


def conversation_object(conversation_id: str, created_at: int, metadata: dict) -> dict[str, Any]:
    return {
        "id": conversation_id,
        "object": "conversation",
        "created_at": created_at,
        "metadata": metadata,
    }


def get_conversation(owner: Owner, conversation_id: str) -> dict[str, Any] | None:
    """Return the conversation object, or None."""
    row = StoredConversation.get_or_none(scope.conversation(owner, conversation_id))
    if row is None:
        return None
    return conversation_object(row.id, row.created_at, json.loads(row.metadata))


@writes
def update_metadata(
    owner: Owner, conversation_id: str, metadata: dict[str, str]
) -> dict[str, Any] | None:
    """Replace the conversation's metadata; return it, or None if unknown."""
    updated = (
        StoredConversation.update(metadata=dumps(metadata))
        .where(scope.conversation(owner, conversation_id))
        .execute()
    )
    return get_conversation(owner, conversation_id) if updated else None


@writes
def delete_conversation(owner: Owner, conversation_id: str) -> bool:
    """Delete the conversation and its items; tell whether it existed."""
    if not StoredConversation.delete().where(scope.conversation(owner, conversation_id)).execute():
        return False
    StoredItem.delete().where(scope.items(owner, conversation_id, CONVERSATION)).execute()
    return True


@writes
def add_items(owner: Owner, conversation_id: str, items: list[dict[str, Any]]) -> None:
    """Append items to a conversation, which is then not idle."""
    now = int(time.time())
    insert_rows(StoredItem, item_rows(owner, conversation_id, CONVERSATION, items, now))
    touch_conversation(conversation_id, now)


def all_items(owner: Owner, conversation_id: str) -> list[dict[str, Any]]:
    """Return every item of the conversation, oldest first."""
    rows = (
        StoredItem.select(StoredItem.body)
        .where(scope.items(owner, conversation_id, CONVERSATION))
        .order_by(StoredItem.seq)
        .tuples()
    )
    return [json.loads(body) for (body,) in rows]


def get_item(owner: Owner, conversation_id: str, item_id: str) -> dict[str, Any] | None:
    row = (
        StoredItem.select(StoredItem.body)
        .where(scope.items(owner, conversation_id, CONVERSATION, item_id))
        .tuples()
        .first()
    )
    return json.loads(row[0]) if row else None


@writes
def delete_item(owner: Owner, conversation_id: str, item_id: str) -> bool:
    deleted = (
        StoredItem.delete()
        .where(scope.items(owner, conversation_id, CONVERSATION, item_id))
        .execute()
    )
    return bool(deleted)
