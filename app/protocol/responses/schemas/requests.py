"""POST /v1/responses: every parameter of the API, and the rules across them."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from app.errors import InvalidRequest
from app.protocol.responses.schemas.errors import validate_body
from app.protocol.responses.schemas.fields import (
    Anything,
    Dispatch,
    Flag,
    FullMatch,
    Integer,
    Lenient,
    Metadata,
    Number,
    Text,
)
from app.protocol.responses.schemas.items import InputField

MAX_MODEL_NAME = 256
MODEL_NAME_PATTERN = r"^[^\s\x00-\x1f\x7f]+$"
TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_.:-]{1,128}$"
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
    validate_create_fields(body)
    for rule in CROSS_FIELD_RULES:
        rule(body)
    return body


def validate_create_fields(body: Any) -> dict[str, Any]:
    """Check each parameter of a create-response body on its own (not the rules across them)."""
    validate_body(CREATE_RESPONSE, body)
    if isinstance(body.get("conversation"), dict):
        body["conversation"] = body["conversation"]["id"]
    return body


def _check_background_is_stored(body: dict[str, Any]) -> None:
    if body.get("background") and body.get("store") is False:
        raise InvalidRequest(
            "Background responses must be stored: 'background' needs 'store' true.",
            param="background",
            code="invalid_value",
        )


def _check_one_history(body: dict[str, Any]) -> None:
    if body.get("previous_response_id") and body.get("conversation"):
        raise InvalidRequest(
            "Mutually exclusive parameters: 'previous_response_id' and 'conversation'. "
            "Ensure you are only providing one of them.",
            param="previous_response_id",
            code="mutually_exclusive_parameters",
        )


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


# The rules across parameters, checked once the parameters each are valid.
CROSS_FIELD_RULES = (_check_background_is_stored, _check_one_history, _check_tool_choice)
