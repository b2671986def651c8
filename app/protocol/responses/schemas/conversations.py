"""The Conversations API's request bodies."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema

from app.protocol.responses.schemas.errors import validate_body
from app.protocol.responses.schemas.fields import Metadata
from app.protocol.responses.schemas.items import ItemList


class CreateConversationRequest(Schema):
    class Meta:
        unknown = RAISE

    items = ItemList(allow_none=True)
    metadata = Metadata(allow_none=True)


class UpdateConversationRequest(Schema):
    class Meta:
        unknown = RAISE

    metadata = Metadata(required=True, allow_none=True)


class AddItemsRequest(Schema):
    class Meta:
        unknown = RAISE

    items = ItemList(required=True)


CONVERSATION_SCHEMAS = {
    "create": CreateConversationRequest(),
    "update": UpdateConversationRequest(),
    "add_items": AddItemsRequest(),
}


def validate_conversation_request(kind: str, body: Any) -> dict[str, Any]:
    """Check a conversations API body (`create`, `update` or `add_items`)."""
    validate_body(CONVERSATION_SCHEMAS[kind], body)
    return body
