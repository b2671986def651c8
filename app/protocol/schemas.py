"""Validation of Responses API request bodies (marshmallow schemas).

Schemas are built once at import. `validate_create_request` returns the
body unchanged when it is valid and raises `InvalidRequest` naming the
offending parameter (e.g. `input[2].content[0].text`) otherwise.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from app.errors import InvalidRequest

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_MODEL_NAME = 256
MODEL_NAME_PATTERN = r"^[^\s\x00-\x1f\x7f]+$"
TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_.:-]{1,128}$"
MESSAGE_ROLES = ("user", "assistant", "system", "developer")
TRANSLATED_TOOLS = ("function", "custom", "local_shell")
HOSTED_TOOLS = (
    "web_search",
    "web_search_preview",
    "web_search_2025_08_26",
    "web_search_preview_2025_03_11",
    "file_search",
    "image_generation",
    "code_interpreter",
    "mcp",
    "computer",
    "computer_use_preview",
    "shell",
    "apply_patch",
    "namespace",
    "tool_search",
    "programmatic_tool_calling",
)


class FullMatch(validate.Regexp):
    """A pattern the whole value must match (`$` alone lets a trailing newline through)."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class Anything(fields.Raw):
    """A field that accepts any JSON value (checked elsewhere or passed through)."""


class Text(fields.String):
    """A string field that refuses non-strings instead of coercing them."""

    default_error_messages = {"invalid": "Expected a string."}  # = NOT_A_STRING


class Integer(fields.Integer):
    """A whole number; strings and booleans are refused."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Number(fields.Float):
    """A JSON number; strings and booleans are refused."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, (bool, str)):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Flag(fields.Boolean):
    """A JSON boolean; "true" or 1 are refused."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


TOO_MANY_PAIRS = f"Must have at most {MAX_METADATA_PAIRS} key-value pairs."
KEY_TOO_LONG = f"Keys must be at most {MAX_METADATA_KEY} characters."
VALUE_TOO_LONG = f"Values must be at most {MAX_METADATA_VALUE} characters."
NOT_A_STRING = "Expected a string."
# The OpenAI API's codes for these refusals (see invalid_request_from).
ERROR_CODES = {
    TOO_MANY_PAIRS: "object_above_max_properties",
    KEY_TOO_LONG: "string_above_max_length",
    VALUE_TOO_LONG: "string_above_max_length",
}
TYPE_ERROR_PREFIXES = ("Not a valid", "Expected ", "Invalid input type")


class Metadata(fields.Dict):
    """Up to 16 string pairs; keys up to 64 characters, values up to 512."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        value = super()._deserialize(value, attr, data, **kwargs)
        if len(value) > MAX_METADATA_PAIRS:
            raise ValidationError(TOO_MANY_PAIRS)
        for key, item in value.items():
            if len(key) > MAX_METADATA_KEY:
                raise ValidationError(KEY_TOO_LONG)
            if not isinstance(item, str):
                raise ValidationError({key: [NOT_A_STRING]})
            if len(item) > MAX_METADATA_VALUE:
                raise ValidationError({key: [VALUE_TOO_LONG]})
        return value


class Lenient(Schema):
    """Item and part schemas: check what we use, let newer fields through."""

    class Meta:
        unknown = EXCLUDE


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


class Dispatch(fields.Field):
    """A JSON object validated by the schema its `type` names."""

    def __init__(self, schemas: dict[str, Schema], kind: str, default_type: str | None = None):
        super().__init__()
        self.schemas = schemas
        self.kind = kind
        self.default_type = default_type

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise ValidationError(f"Expected an object ({self.kind}).")
        item_type = value.get("type", self.default_type)
        schema = self.schemas.get(item_type) if isinstance(item_type, str) else None
        if schema is None:
            raise ValidationError({"type": [f"Unsupported {self.kind} type: {item_type!r}."]})
        errors = schema.validate(value)
        if errors:
            raise ValidationError(errors)
        return value


class StringOrList(fields.Field):
    """A string, or a list whose every element `element` accepts."""

    def __init__(self, element: Dispatch, what: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.element = element
        self.what = what

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise ValidationError(f"Expected a string or an array of {self.what}.")
        errors = {}
        for index, element in enumerate(value):
            try:
                self.element.deserialize(element)
            except ValidationError as exc:
                errors[index] = exc.messages
        if errors:
            raise ValidationError(errors)
        return value


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


class FunctionTool(Lenient):
    name = Text(required=True, validate=FullMatch(TOOL_NAME_PATTERN))
    description = Text(allow_none=True)
    parameters = fields.Dict(allow_none=True)
    strict = Flag(allow_none=True)


class CustomTool(Lenient):
    name = Text(required=True, validate=FullMatch(TOOL_NAME_PATTERN))
    description = Text(allow_none=True)
    format = fields.Dict(allow_none=True)


TOOL_SCHEMAS: dict[str, Schema] = {
    "function": FunctionTool(),
    "custom": CustomTool(),
    "local_shell": Lenient(),
    **{name: Lenient() for name in HOSTED_TOOLS},
}


class ToolChoice(fields.Field):
    """`tool_choice`: a mode string or an object naming a tool."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            if value not in ("auto", "none", "required"):
                raise ValidationError("Must be one of auto, none, required or an object.")
            return value
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            raise ValidationError("Must be a string or an object with a 'type'.")
        if value["type"] in ("function", "custom") and not isinstance(value.get("name"), str):
            raise ValidationError({"name": ["Missing required parameter."]})
        return value


class TextFormat(Lenient):
    type = Text(required=True, validate=validate.OneOf(("text", "json_object", "json_schema")))
    name = Text()
    schema = fields.Dict()
    strict = Flag(allow_none=True)
    description = Text()


class TextConfig(Lenient):
    format = fields.Nested(TextFormat)
    verbosity = Text(allow_none=True, validate=validate.OneOf(("low", "medium", "high")))


class ReasoningConfig(Lenient):
    effort = Text(
        allow_none=True,
        validate=validate.OneOf(("none", "minimal", "low", "medium", "high", "xhigh", "max")),
    )
    summary = Text(allow_none=True)
    generate_summary = Text(allow_none=True)


class ConversationRef(fields.Field):
    """`conversation`: an id string or `{"id": …}`."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, dict):
            value = value.get("id")
        if not isinstance(value, str) or not value:
            raise ValidationError("Expected a conversation id or an object with an 'id'.")
        return value


class CreateResponseRequest(Schema):
    """POST /v1/responses. Every parameter of the API is known here."""

    class Meta:
        unknown = RAISE

    model = Text(
        required=True,
        validate=[
            validate.Length(min=1, max=MAX_MODEL_NAME),
            FullMatch(MODEL_NAME_PATTERN, error="Must not contain spaces or control characters."),
        ],
    )
    input = InputField()
    instructions = Text(allow_none=True)
    previous_response_id = Text(allow_none=True)
    conversation = ConversationRef(allow_none=True)
    stream = Flag(allow_none=True)
    store = Flag(allow_none=True)
    background = Flag(allow_none=True)
    temperature = Number(allow_none=True, validate=validate.Range(0, 2))
    top_p = Number(allow_none=True, validate=validate.Range(0, 1))
    max_output_tokens = Integer(allow_none=True, validate=validate.Range(min=1))
    max_tool_calls = Integer(allow_none=True, validate=validate.Range(min=1))
    top_logprobs = Integer(allow_none=True, validate=validate.Range(0, 20))
    parallel_tool_calls = Flag(allow_none=True)
    tools = fields.List(Dispatch(TOOL_SCHEMAS, "tool"), allow_none=True)
    tool_choice = ToolChoice(allow_none=True)
    text = fields.Nested(TextConfig, allow_none=True)
    reasoning = fields.Nested(ReasoningConfig, allow_none=True)
    metadata = Metadata(allow_none=True)
    user = Text(allow_none=True)
    include = fields.List(Text(), allow_none=True)
    truncation = Text(allow_none=True, validate=validate.OneOf(("auto", "disabled")))
    service_tier = Text(allow_none=True)
    safety_identifier = Text(allow_none=True)
    prompt_cache_key = Text(allow_none=True)
    prompt_cache_retention = Text(allow_none=True)
    stream_options = fields.Dict(allow_none=True)
    prompt = fields.Dict(allow_none=True)
    access_programs = Anything(allow_none=True)
    background_options = Anything(allow_none=True)
    context_management = Anything(allow_none=True)
    image = Anything(allow_none=True)
    moderation = Anything(allow_none=True)
    prompt_cache_options = Anything(allow_none=True)
    client_metadata = Anything(allow_none=True)  # sent by Codex CLI


CREATE_RESPONSE = CreateResponseRequest()


def validate_create_request(body: Any) -> dict[str, Any]:
    """Check a create-response body; raise `InvalidRequest` at the first problem."""
    _validate(CREATE_RESPONSE, body)
    _check_tool_choice(body)
    if isinstance(body.get("conversation"), dict):
        body["conversation"] = body["conversation"]["id"]
    return body


def _validate(schema: Schema, body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    errors = schema.validate(body)
    if errors:
        raise invalid_request_from(errors)


def _check_tool_choice(body: dict[str, Any]) -> None:
    choice = body.get("tool_choice")
    if not isinstance(choice, dict) or choice.get("type") not in ("function", "custom"):
        return
    names = {tool.get("name") for tool in body.get("tools") or ()}
    if choice["name"] not in names:
        raise InvalidRequest(
            f"Tool choice '{choice['name']}' not found in 'tools' parameter.",
            param="tool_choice",
            code="invalid_value",
        )


def invalid_request_from(errors: dict[Any, Any]) -> InvalidRequest:
    """Turn marshmallow's nested error dict into one OpenAI-shaped 400."""
    path, message = _first_error(errors)
    param = _param_name(path)
    if message == "Unknown field.":
        text, code = f"Unknown parameter: '{param}'.", "unknown_parameter"
    elif message == "Missing data for required field.":
        text, code = f"Missing required parameter: '{param}'.", "missing_required_parameter"
    elif message in ERROR_CODES:
        text, code = f"Invalid '{param}': {message}", ERROR_CODES[message]
    elif message.startswith(TYPE_ERROR_PREFIXES):
        text, code = f"Invalid type for '{param}': {message}", "invalid_type"
    else:
        text, code = f"Invalid value for '{param}': {message}", "invalid_value"
    return InvalidRequest(text, param=param, code=code)


def _first_error(errors: Any, path: tuple[Any, ...] = ()) -> tuple[tuple[Any, ...], str]:
    if isinstance(errors, dict):
        key = next(iter(errors))
        return _first_error(errors[key], path + (key,))
    if isinstance(errors, list) and errors:
        return _first_error(errors[0], path)
    return path, str(errors)


def _param_name(path: tuple[Any, ...]) -> str:
    name = ""
    for part in path:
        if part == "_schema":
            continue
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


MAX_CONVERSATION_ITEMS = 20


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
    _validate(CONVERSATION_SCHEMAS[kind], body)
    return body
