"""Use case: the Conversations API (conversations and their items), as the caller's own."""

from __future__ import annotations

from typing import Any

from app.errors import NotFound
from app.protocol.ids import new_id
from app.protocol.responses.objects import list_object
from app.services.context import RequestContext
from app.services.inputs import normalize_input
from app.services.responses import item_page
from app.store import conversations as store
from app.store.models import CONVERSATION


def create_conversation(context: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
    items = normalize_input(body.get("items") or [])
    metadata = body.get("metadata") or {}
    return store.create_conversation(context.owner, new_id("conv"), metadata, items)


def get_conversation(context: RequestContext, conversation_id: str) -> dict[str, Any]:
    conversation = store.get_conversation(context.owner, conversation_id)
    if conversation is None:
        raise _not_found(conversation_id)
    return conversation


def update_conversation(
    context: RequestContext, conversation_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    conversation = store.update_metadata(context.owner, conversation_id, metadata)
    if conversation is None:
        raise _not_found(conversation_id)
    return conversation


def delete_conversation(context: RequestContext, conversation_id: str) -> dict[str, Any]:
    if not store.delete_conversation(context.owner, conversation_id):
        raise _not_found(conversation_id)
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}


def list_items(
    context: RequestContext, conversation_id: str, page: dict[str, Any]
) -> dict[str, Any]:
    get_conversation(context, conversation_id)
    return item_page(context.owner, conversation_id, CONVERSATION, page)


def add_items(
    context: RequestContext, conversation_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Append items; return them as a list object, as the API does."""
    get_conversation(context, conversation_id)
    items = normalize_input(body["items"])
    store.add_items(context.owner, conversation_id, items)
    return list_object(items, has_more=False)


def get_item(context: RequestContext, conversation_id: str, item_id: str) -> dict[str, Any]:
    get_conversation(context, conversation_id)
    item = store.get_item(context.owner, conversation_id, item_id)
    if item is None:
        raise NotFound(f"Item with id '{item_id}' not found.", param="item_id")
    return item


def delete_item(context: RequestContext, conversation_id: str, item_id: str) -> dict[str, Any]:
    """Delete one item; the API answers with the conversation."""
    conversation = get_conversation(context, conversation_id)
    if not store.delete_item(context.owner, conversation_id, item_id):
        raise NotFound(f"Item with id '{item_id}' not found.", param="item_id")
    return conversation


def _not_found(conversation_id: str) -> NotFound:
    return NotFound(f"Conversation with id '{conversation_id}' not found.", param="conversation_id")
