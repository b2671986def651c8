"""Validation of the Responses and Conversations APIs' request bodies (marshmallow schemas).

Schemas are built once at import. `validate_create_request` returns the
body unchanged when it is valid and raises `InvalidRequest` naming the
offending parameter (e.g. `input[2].content[0].text`) otherwise. The
field types are in `fields`, items and content parts in `items`, the
create-response body in `requests`, the conversations' bodies in
`conversations`, the translation of marshmallow's errors in `errors`.
"""

from app.protocol.responses.schemas.conversations import (
    AddItemsRequest,
    CreateConversationRequest,
    UpdateConversationRequest,
    validate_conversation_request,
)
from app.protocol.responses.schemas.fields import Flag, Integer, Text
from app.protocol.responses.schemas.requests import (
    CreateResponseRequest,
    validate_create_fields,
    validate_create_request,
)

__all__ = [
    "AddItemsRequest",
    "CreateConversationRequest",
    "CreateResponseRequest",
    "Flag",
    "Integer",
    "Text",
    "UpdateConversationRequest",
    "validate_conversation_request",
    "validate_create_fields",
    "validate_create_request",
]
