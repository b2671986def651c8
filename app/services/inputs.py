"""Preparing a request's items: normalise them, resolve references, load history.

Everything here runs before anything is sent upstream, so a bad reference
or an unknown id is refused with nothing sent and nothing stored.
"""

from __future__ import annotations

import logging
from typing import Any

from app.auth.principal import Owner
from app.errors import NotFound
from app.protocol.ids import new_item_id
from app.protocol.responses.objects import output_text_part
from app.protocol.sealed import open_sealed
from app.store import conversations, responses

log = logging.getLogger(__name__)


def normalize_input(raw: Any) -> list[dict[str, Any]]:
    """Return the input as typed items with ids and list content, as the API stores them."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    return [_normalize_item(dict(item)) for item in raw]


def _normalize_item(item: dict[str, Any]) -> dict[str, Any]:
    item.setdefault("type", "message")
    if item["type"] == "item_reference":
        return item
    if not item.get("id"):
        item["id"] = new_item_id(item["type"])
    if item["type"] == "message":
        item.setdefault("status", "completed")
        if isinstance(item["content"], str):
            item["content"] = [_text_part(item["role"], item["content"])]
    return item


def _text_part(role: str, text: str) -> dict[str, Any]:
    return output_text_part(text) if role == "assistant" else {"type": "input_text", "text": text}


def history_for(owner: Owner, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the stored items of `owner`'s this request continues (chain or conversation)."""
    previous = request.get("previous_response_id")
    conversation = request.get("conversation")
    if previous:
        chain = responses.chain_items(owner, previous)
        if chain is None:
            raise NotFound(
                f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        return chain
    if conversation:
        if conversations.get_conversation(owner, conversation) is None:
            raise NotFound(
                f"Conversation with id '{conversation}' not found.",
                param="conversation",
                code="conversation_not_found",
            )
        return conversations.all_items(owner, conversation)
    return []


def resolve_references(owner: Owner, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace `item_reference` items with the stored items of `owner`'s they name."""
    wanted = [item["id"] for item in items if item["type"] == "item_reference"]
    if not wanted:
        return items
    found = responses.items_by_id(owner, wanted)
    missing = [item_id for item_id in wanted if item_id not in found]
    if missing:
        raise NotFound(
            f"Item with id '{missing[0]}' not found.", param="input", code="item_not_found"
        )
    return [found[item["id"]] if item["type"] == "item_reference" else item for item in items]


def open_sealed_reasoning(items: list[dict[str, Any]], secret: bytes) -> list[dict[str, Any]]:
    """Give reasoning items that carry `encrypted_content` their text back."""
    opened = []
    for item in items:
        blob = item.get("encrypted_content") if item["type"] == "reasoning" else None
        if blob and not item.get("content"):
            text = open_sealed(blob, secret)
            if text is None:
                log.warning(
                    "reasoning item %s: encrypted_content not readable, left out", item["id"]
                )
                continue
            item = {**item, "content": [{"type": "reasoning_text", "text": text}]}
        opened.append(item)
    return opened
