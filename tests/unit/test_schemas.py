"""Validation of create-response bodies (app/protocol/schemas.py).

The accepted side is checked against the openai SDK's own request types:
a body that uses every parameter of `ResponseCreateParams`, every input
item type and every tool type the SDK knows must pass. The refused side
checks the OpenAI error shape: status 400, `invalid_request_error`, the
offending `param` path and the API's `code`.
"""

from __future__ import annotations

import copy
from typing import Any, get_args

import pydantic
import pytest
from openai.types.responses import EasyInputMessage
from openai.types.responses.response_create_params import ResponseCreateParamsStreaming
from openai.types.responses.response_input_item import ResponseInputItem
from openai.types.responses.tool import Tool
from openai.types.shared.reasoning_effort import ReasoningEffort

from app.errors import InvalidRequest, error_body
from app.protocol.responses.schemas import validate_create_fields, validate_create_request
from tests.unit.fixtures import load_fixture

FULL_REQUEST = load_fixture("full_create_request")
INPUT_ITEMS = FULL_REQUEST["input"]
TOOLS = FULL_REQUEST["tools"]


def body(**fields: Any) -> dict[str, Any]:
    """A minimal valid body plus `fields`."""
    return {"model": "fake-model", "input": "hi", **fields}


def refused(request: Any) -> InvalidRequest:
    """Validate `request`, expecting a 400 in the OpenAI error shape; return the error."""
    with pytest.raises(InvalidRequest) as caught:
        validate_create_request(request)
    error = caught.value
    assert error.status == 400
    rendered = error_body(error)["error"]
    assert set(rendered) == {"message", "type", "param", "code"}
    assert rendered["type"] == "invalid_request_error"
    assert rendered["message"]
    return error


def assert_refused(request: Any, param: str | None, code: str) -> None:
    error = refused(request)
    assert (error.param, error.code) == (param, code), error.message


# --- accepted -----------------------------------------------------------------


def test_full_fixture_uses_every_create_parameter_of_the_sdk():
    assert set(FULL_REQUEST) == set(ResponseCreateParamsStreaming.__annotations__)


def test_full_fixture_is_valid_for_the_sdk_types():
    pydantic.TypeAdapter(ResponseCreateParamsStreaming).validate_python(FULL_REQUEST)
    for item in INPUT_ITEMS:
        model = pydantic.TypeAdapter(ResponseInputItem).validate_python(item)
        assert not model.model_extra, f"fixture item has fields the SDK does not know: {item}"
    for tool in TOOLS:
        pydantic.TypeAdapter(Tool).validate_python(tool)


def test_body_with_every_parameter_is_accepted_as_sent():
    accepted = validate_create_fields(copy.deepcopy(FULL_REQUEST))
    # The one change allowed: `conversation` reduced to its id.
    assert accepted.pop("conversation") in ("conv_full", FULL_REQUEST["conversation"])
    assert accepted == {k: v for k, v in FULL_REQUEST.items() if k != "conversation"}


def test_every_parameter_at_once_breaks_a_rule_across_them():
    # The fixture sends both ways to continue (the API accepts one at a time).
    with pytest.raises(InvalidRequest) as caught:
        validate_create_request(copy.deepcopy(FULL_REQUEST))
    assert caught.value.code == "mutually_exclusive_parameters"
    without = {k: v for k, v in FULL_REQUEST.items() if k != "previous_response_id"}
    assert validate_create_request(copy.deepcopy(without))["conversation"] == "conv_full"


@pytest.mark.parametrize(
    ("rule", "body"),
    [
        ("background", {"background": True, "store": False}),
        ("previous_response_id", {"previous_response_id": "resp_1", "conversation": "conv_1"}),
        ("tool_choice", {"tool_choice": {"type": "function", "name": "nowhere"}}),
    ],
)
def test_the_rules_across_parameters_are_checked_with_the_parameters(rule, body):
    with pytest.raises(InvalidRequest) as caught:
        validate_create_request({"model": "m", "input": "hi", **body})
    assert caught.value.param == rule and caught.value.status == 400


@pytest.mark.parametrize(
    "item", INPUT_ITEMS, ids=[f"{n}-{i.get('type', 'easy')}" for n, i in enumerate(INPUT_ITEMS)]
)
def test_each_input_item_type_is_accepted_alone(item):
    validate_create_request(body(input=[item]))


def test_fixture_covers_every_item_type_the_gateway_translates():
    kinds = {item.get("type", "message") for item in INPUT_ITEMS}
    assert kinds == {
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "local_shell_call",
        "local_shell_call_output",
        "item_reference",
    }


@pytest.mark.parametrize(
    "content",
    [
        "plain string",
        [{"type": "input_text", "text": "parts"}],
        [{"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"}],
        [{"type": "input_image", "image_url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "auto"}],
        [{"type": "input_image", "file_id": "file_123", "detail": "high"}],
        [{"type": "input_file", "file_id": "file_123"}],
    ],
    ids=["string", "text-part", "image-url", "image-data-url", "image-file-id", "file"],
)
def test_user_message_content_forms_are_accepted(content):
    message = {"role": "user", "content": content}
    pydantic.TypeAdapter(EasyInputMessage).validate_python(message)
    validate_create_request(body(input=[message]))


def test_function_call_output_as_content_parts_is_accepted():
    output = [{"type": "input_text", "text": "18C"}, {"type": "input_image", "image_url": "x"}]
    item = {"type": "function_call_output", "call_id": "call_1", "output": output}
    validate_create_request(body(input=[item]))


def sdk_literals(union: Any, field: str = "type") -> list[str]:
    """Every value the SDK allows for `field` across the models of a (tagged) union."""
    members = get_args(get_args(union)[0]) if get_args(union) else ()
    values = {
        value for member in members for value in get_args(member.model_fields[field].annotation)
    }
    return sorted(value for value in values if isinstance(value, str))


@pytest.mark.parametrize("tool_type", sdk_literals(Tool))
def test_every_sdk_tool_type_is_accepted(tool_type):
    tool = {"type": tool_type, "name": "tool_1"} if tool_type in ("function", "custom") else {}
    validate_create_request(body(tools=[{"type": tool_type, **tool}]))


@pytest.mark.parametrize("effort", [value for value in get_args(get_args(ReasoningEffort)[0])])
def test_every_sdk_reasoning_effort_is_accepted(effort):
    validate_create_request(body(reasoning={"effort": effort}))


@pytest.mark.parametrize(
    "choice",
    [
        "auto",
        "none",
        "required",
        {"type": "function", "name": "get_weather"},
        {"type": "custom", "name": "apply_patch"},
        {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "local_shell"}]},
        {"type": "web_search_preview"},
        {"type": "mcp", "server_label": "docs"},
    ],
    ids=str,
)
def test_tool_choice_forms_are_accepted(choice):
    validate_create_request(body(tools=TOOLS, tool_choice=choice))


@pytest.mark.parametrize("conversation", ["conv_1", {"id": "conv_1"}], ids=["id", "object"])
def test_conversation_as_id_or_object_is_accepted(conversation):
    validate_create_request(body(conversation=conversation))


def test_metadata_at_the_limits_is_accepted():
    metadata = {f"{index:02d}".ljust(64, "k"): "v" * 512 for index in range(16)}
    validate_create_request(body(metadata=metadata))


@pytest.mark.parametrize(
    "name",
    ["get_weather", "apply-patch", "ns.tool:v2", "x" * 64],
    ids=["snake", "dash", "dots", "64"],
)
def test_valid_tool_names_are_accepted(name):
    validate_create_request(body(tools=[{"type": "function", "name": name}]))


@pytest.mark.parametrize(
    "fields",
    [{"temperature": None}, {"max_output_tokens": None}, {"tools": None}, {"metadata": None}],
    ids=str,
)
def test_explicit_nulls_are_accepted(fields):
    validate_create_request(body(**fields))


# --- refused ------------------------------------------------------------------


def test_body_that_is_not_an_object_is_refused():
    for request in ([], "hi", None, 5):
        assert refused(request).param is None


def test_unknown_parameter_is_refused():
    assert_refused(body(temprature=0.5), "temprature", "unknown_parameter")


def test_missing_model_is_refused():
    assert_refused({"input": "hi"}, "model", "missing_required_parameter")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": "1"}, "temperature"),
        ({"top_p": True}, "top_p"),
        ({"stream": "true"}, "stream"),
        ({"store": 1}, "store"),
        ({"max_output_tokens": "5"}, "max_output_tokens"),
        ({"max_output_tokens": 1.5}, "max_output_tokens"),
        ({"model": 5}, "model"),
        ({"instructions": ["a"]}, "instructions"),
        ({"input": 5}, "input"),
        ({"tools": {"type": "function"}}, "tools"),
        ({"metadata": ["a"]}, "metadata"),
        ({"include": "reasoning.encrypted_content"}, "include"),
    ],
    ids=lambda value: str(value) if isinstance(value, dict) else None,
)
def test_wrong_json_types_are_refused_as_invalid_type(fields, param):
    assert_refused(body(**fields), param, "invalid_type")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"truncation": "sometimes"}, "truncation"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
    ],
    ids=lambda value: str(value) if isinstance(value, dict) else None,
)
def test_out_of_range_values_are_refused(fields, param):
    assert refused(body(**fields)).param == param


@pytest.mark.parametrize(
    ("item", "param", "code"),
    [
        ({"type": "nope"}, "input[0].type", "invalid_value"),
        ({"role": "robot", "content": "x"}, "input[0].role", "invalid_value"),
        ({"role": "user"}, "input[0].content", "missing_required_parameter"),
        ({"role": "user", "content": 5}, "input[0].content", "invalid_type"),
        (
            {"role": "user", "content": [{"type": "bogus_part", "text": "x"}]},
            "input[0].content[0].type",
            "invalid_value",
        ),
        (
            {"role": "user", "content": [{"type": "input_text"}]},
            "input[0].content[0].text",
            "missing_required_parameter",
        ),
        (
            {"role": "user", "content": [{"type": "input_text", "text": 5}]},
            "input[0].content[0].text",
            "invalid_type",
        ),
        (
            {"type": "function_call", "call_id": "c", "name": "f"},
            "input[0].arguments",
            "missing_required_parameter",
        ),
        (
            {"type": "function_call_output", "output": "x"},
            "input[0].call_id",
            "missing_required_parameter",
        ),
        ({"type": "item_reference"}, "input[0].id", "missing_required_parameter"),
    ],
    ids=lambda value: str(value) if isinstance(value, dict) else None,
)
def test_bad_input_items_are_refused_with_their_path(item, param, code):
    good = {"role": "user", "content": "first"}
    error = refused(body(input=[good, item]))
    assert (error.param, error.code) == (param.replace("input[0]", "input[1]"), code)


def test_local_shell_call_without_exec_action_is_refused():
    item = {"type": "local_shell_call", "call_id": "c", "action": {"type": "run", "command": []}}
    assert refused(body(input=[item])).param == "input[0].action.type"


def test_too_many_metadata_pairs_are_refused():
    metadata = {f"key{index}": "v" for index in range(17)}
    assert_refused(body(metadata=metadata), "metadata", "object_above_max_properties")


def test_metadata_value_over_512_chars_is_refused():
    assert_refused(body(metadata={"note": "v" * 513}), "metadata.note", "string_above_max_length")


def test_metadata_key_over_64_chars_is_refused():
    error = refused(body(metadata={"k" * 65: "v"}))
    assert error.param == "metadata"


def test_metadata_value_that_is_not_a_string_is_refused():
    assert refused(body(metadata={"count": 5})).param.startswith("metadata")


@pytest.mark.parametrize(
    "choice", [{"type": "function", "name": "missing"}, {"type": "custom", "name": "missing"}]
)
def test_tool_choice_naming_a_tool_not_in_tools_is_refused(choice):
    assert_refused(body(tools=TOOLS, tool_choice=choice), "tool_choice", "invalid_value")


def test_tool_choice_naming_a_tool_without_any_tools_is_refused():
    choice = {"type": "function", "name": "get_weather"}
    assert_refused(body(tool_choice=choice), "tool_choice", "invalid_value")


def test_tool_choice_function_without_name_is_refused():
    error = refused(body(tools=TOOLS, tool_choice={"type": "function"}))
    assert error.param == "tool_choice.name"


@pytest.mark.parametrize(
    "name", ["bad name", "", "x" * 129, "naïve"], ids=["space", "empty", "129", "non-ascii"]
)
def test_invalid_tool_name_is_refused(name):
    assert_refused(
        body(tools=[{"type": "function", "name": name}]), "tools[0].name", "invalid_value"
    )


def test_tool_of_unknown_type_is_refused():
    assert_refused(body(tools=[{"type": "made_up"}]), "tools[0].type", "invalid_value")


@pytest.mark.parametrize("conversation", [{}, {"id": 5}, {"id": ""}, 5, "", ["conv_1"]], ids=str)
def test_malformed_conversation_is_refused(conversation):
    assert refused(body(conversation=conversation)).param in ("conversation", "conversation.id")
