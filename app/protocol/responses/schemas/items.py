"""Input items and content parts: what `input` and a conversation's `items` may hold."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from app.protocol.responses.schemas.fields import (
    Anything,
    Dispatch,
    Lenient,
    StringOrList,
    Text,
)

MESSAGE_ROLES = ("user", "assistant", "system", "developer")
MAX_CONVERSATION_ITEMS = 20


class InputTextPart(Lenient):
    text = Text(required=True)


class OutputTextPart(Lenient):
    text = Text(required=True)
    annotations = fields.List(Anything())


class RefusalPart(Lenient):
    refusal = Text(required=True)


class ImagePart(Lenient):
    image_url = Text(allow_none=True)
    file_id = Text(allow_none=True)
    detail = Text(validate=validate.OneOf(("low", "high", "auto", "original")))


class FilePart(Lenient):
    file_id = Text(allow_none=True)
    file_data = Text()
    file_url = Text()
    filename = Text()


PART_SCHEMAS: dict[str, Schema] = {
    "input_text": InputTextPart(),
    "output_text": OutputTextPart(),
    "text": InputTextPart(),
    "summary_text": InputTextPart(),
    "reasoning_text": InputTextPart(),
    "refusal": RefusalPart(),
    "input_image": ImagePart(),
    "input_file": FilePart(),
}


class TextOrParts(StringOrList):
    """Message content or tool output: a string or a list of content parts."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(Dispatch(PART_SCHEMAS, "content part"), "content parts", **kwargs)


class MessageItem(Lenient):
    role = Text(required=True, validate=validate.OneOf(MESSAGE_ROLES))
    content = TextOrParts(required=True)
    id = Text()
    status = Text()


class FunctionCallItem(Lenient):
    call_id = Text(required=True)
    name = Text(required=True)
    arguments = Text(required=True)
    id = Text()


class CallOutputItem(Lenient):
    call_id = Text(required=True)
    output = TextOrParts(required=True)
    id = Text(allow_none=True)


class CustomToolCallItem(Lenient):
    call_id = Text(required=True)
    name = Text(required=True)
    input = Text(required=True)
    id = Text()


class ReasoningItem(Lenient):
    id = Text()
    summary = fields.List(Dispatch(PART_SCHEMAS, "summary part"))
    content = fields.List(Dispatch(PART_SCHEMAS, "reasoning part"), allow_none=True)
    encrypted_content = Text(allow_none=True)


class LocalShellAction(Lenient):
    type = Text(required=True, validate=validate.Equal("exec"))
    command = fields.List(Text(), required=True)


class LocalShellCallItem(Lenient):
    call_id = Text(required=True)
    action = fields.Nested(LocalShellAction, required=True)
    id = Text()


class LocalShellOutputItem(Lenient):
    id = Text(required=True)
    output = Text(required=True)


class ItemReference(Lenient):
    id = Text(required=True)


# Items the API defines that have no Chat Completions form (hosted tool calls,
# compaction…): accepted so that replayed history is not refused, then left
# out of the backend request.
UNTRANSLATED_ITEMS = (
    "file_search_call",
    "computer_call",
    "computer_call_output",
    "web_search_call",
    "tool_search_call",
    "tool_search_output",
    "additional_tools",
    "image_generation_call",
    "code_interpreter_call",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "compaction",
    "compaction_trigger",
    "program",
    "program_output",
    "configuration_update",
)

ITEM_SCHEMAS: dict[str, Schema] = {
    "message": MessageItem(),
    "function_call": FunctionCallItem(),
    "function_call_output": CallOutputItem(),
    "custom_tool_call": CustomToolCallItem(),
    "custom_tool_call_output": CallOutputItem(),
    "reasoning": ReasoningItem(),
    "local_shell_call": LocalShellCallItem(),
    "local_shell_call_output": LocalShellOutputItem(),
    "item_reference": ItemReference(),
    **{name: Lenient() for name in UNTRANSLATED_ITEMS},
}


class InputField(StringOrList):
    """`input`: a string or a list of input items."""

    def __init__(self, **kwargs: Any) -> None:
        item = Dispatch(ITEM_SCHEMAS, "input item", default_type="message")
        super().__init__(item, "input items", **kwargs)


class ItemList(StringOrList):
    """A list of input items (no bare string), at most 20 per request."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(Dispatch(ITEM_SCHEMAS, "item", default_type="message"), "items", **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, list):
            raise ValidationError("Expected an array of items.")
        if len(value) > MAX_CONVERSATION_ITEMS:
            raise ValidationError(f"Must have at most {MAX_CONVERSATION_ITEMS} items.")
        return super()._deserialize(value, attr, data, **kwargs)
