"""The response object (app/protocol/responses/objects.py), and Chat answers as its output
(app/protocol/chat/completion.py): JSON answers and request echo.

Every response built here is validated as `openai.types.responses.Response`
with no field the SDK does not know (`tests.events.unknown_fields`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from app.protocol.chat.completion import answer_of, usage_from_chat
from app.protocol.ids import new_id
from app.protocol.responses.objects import complete_response, new_response
from app.protocol.responses.schemas import validate_create_fields, validate_create_request
from tests.events import unknown_fields
from tests.unit.fixtures import load_fixture

TOOL_KINDS = {"get_weather": "function", "apply_patch": "custom", "local_shell": "local_shell"}
CREATED_AT = 1732320000
# What the API reports for each echoed field when the request leaves it out.
API_DEFAULTS = {
    "background": False,
    "conversation": None,
    "instructions": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "prompt_cache_key": None,
    "prompt_cache_retention": None,
    "reasoning": {"effort": None, "summary": None},
    "safety_identifier": None,
    "service_tier": "auto",
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}, "verbosity": "medium"},
    "tool_choice": "auto",
    "tools": [],
    "top_logprobs": 0,
    "top_p": 1.0,
    "truncation": "disabled",
    "user": None,
}
# Request fields the API echoes unchanged in the response object.
ECHOED_AS_SENT = sorted(set(API_DEFAULTS) - {"conversation"}) + ["model"]


def validated(response: dict[str, Any]) -> Response:
    """Validate as the SDK's Response and refuse fields it does not model (except `store`)."""
    model = Response.model_validate(response)
    assert not unknown_fields(model, "response")
    json.dumps(response)  # and it is plain JSON
    return model


def completion(
    message: dict[str, Any], finish_reason: str = "stop", usage: dict | None = None
) -> dict[str, Any]:
    """A Chat completion as OpenAI-compatible servers return it; checked against the SDK."""
    body = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": CREATED_AT,
        "model": "fake-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", **message},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
    }
    if usage is not None:
        body["usage"] = usage
    ChatCompletion.model_validate(body)
    return body


def translate(
    body: dict[str, Any], reasoning_field: str = "reasoning_content", request: dict | None = None
) -> tuple[dict[str, Any], Response]:
    response = new_response(request or {"model": "fake-model"}, new_id("resp"), CREATED_AT)
    output, usage, incomplete = answer_of(body, TOOL_KINDS, reasoning_field)
    result = complete_response(response, output, usage, incomplete)
    return result, validated(result)


def chat_tool_call(call_id: str | None, name: str, arguments: str) -> dict[str, Any]:
    call = {"type": "function", "function": {"name": name, "arguments": arguments}}
    return {"id": call_id, **call} if call_id else call


USAGE = {
    "prompt_tokens": 20,
    "completion_tokens": 10,
    "total_tokens": 30,
    "prompt_tokens_details": {"cached_tokens": 16, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 4, "audio_tokens": 0},
}


# --- a Chat completion as a response ---------------------------------------------


def test_text_answer_becomes_one_completed_message():
    result, response = translate(completion({"content": "Paris."}, usage=USAGE))
    assert response.status == "completed"
    assert response.completed_at is not None
    (message,) = result["output"]
    assert message["id"].startswith("msg_")
    assert (message["type"], message["role"], message["status"]) == (
        "message",
        "assistant",
        "completed",
    )
    assert message["content"] == [
        {"type": "output_text", "text": "Paris.", "annotations": [], "logprobs": []}
    ]
    assert response.output_text == "Paris."
    assert response.error is None and response.incomplete_details is None


@pytest.mark.parametrize(
    ("sent", "configured"),
    [
        ("reasoning_content", "reasoning_content"),
        ("reasoning", "reasoning_content"),
        ("reasoning", "reasoning"),
        ("reasoning_content", "reasoning"),
    ],
)
def test_reasoning_in_either_field_becomes_a_reasoning_item_first(sent, configured):
    message = {"content": "4", sent: "2 and 2 make 4."}
    result, response = translate(completion(message), reasoning_field=configured)
    assert [item.type for item in response.output] == ["reasoning", "message"]
    reasoning = result["output"][0]
    assert reasoning["id"].startswith("rs_")
    assert reasoning["summary"] == []
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "2 and 2 make 4."}]


def test_function_tool_call_becomes_a_function_call_item():
    calls = [chat_tool_call("call_1", "get_weather", '{"city":"Paris"}')]
    result, response = translate(completion({"content": None, "tool_calls": calls}, "tool_calls"))
    (item,) = result["output"]
    assert item["id"].startswith("fc_")
    assert {k: item[k] for k in ("type", "call_id", "name", "arguments", "status")} == {
        "type": "function_call",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
        "status": "completed",
    }
    assert response.status == "completed"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"input": "*** Begin Patch\\n*** End Patch"}', "*** Begin Patch\n*** End Patch"),
        ("raw text the model sent", "raw text the model sent"),
        ('{"other": 1}', '{"other": 1}'),
    ],
    ids=["wrapped", "not-json", "no-input-key"],
)
def test_custom_tool_call_comes_back_with_its_raw_input(arguments, expected):
    calls = [chat_tool_call("call_p", "apply_patch", arguments)]
    result, _ = translate(completion({"content": None, "tool_calls": calls}, "tool_calls"))
    (item,) = result["output"]
    assert item["id"].startswith("ctc_")
    assert (item["type"], item["call_id"], item["name"], item["input"]) == (
        "custom_tool_call",
        "call_p",
        "apply_patch",
        expected,
    )


@pytest.mark.parametrize(
    ("arguments", "command"),
    [
        ('{"command": ["ls", "-la"], "working_directory": "/tmp"}', ["ls", "-la"]),
        ('{"command": "ls -la | wc -l"}', ["bash", "-lc", "ls -la | wc -l"]),
        ("not json", []),
    ],
    ids=["array", "string", "garbage"],
)
def test_local_shell_call_comes_back_with_an_exec_action(arguments, command):
    calls = [chat_tool_call("call_s", "local_shell", arguments)]
    result, response = translate(completion({"content": None, "tool_calls": calls}, "tool_calls"))
    item = response.output[0]
    assert result["output"][0]["id"].startswith("lsh_")
    assert (item.type, item.call_id, item.action.type) == ("local_shell_call", "call_s", "exec")
    assert item.action.command == command


def test_text_and_several_tool_calls_keep_their_order():
    calls = [
        chat_tool_call("call_1", "get_weather", '{"city":"Paris"}'),
        chat_tool_call("call_2", "apply_patch", '{"input":"x"}'),
    ]
    message = {"content": "Working on it.", "reasoning_content": "plan", "tool_calls": calls}
    _, response = translate(completion(message, "tool_calls"))
    assert [item.type for item in response.output] == [
        "reasoning",
        "message",
        "function_call",
        "custom_tool_call",
    ]


def test_tool_call_without_id_gets_a_call_id():
    body = completion({"content": None}, "tool_calls")
    body["choices"][0]["message"]["tool_calls"] = [chat_tool_call(None, "get_weather", "{}")]
    result, _ = translate(body)
    assert result["output"][0]["call_id"].startswith("call_")


def test_finish_reason_length_is_incomplete_for_max_output_tokens():
    _, response = translate(completion({"content": "Once upon a"}, "length", USAGE))
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"
    assert response.error is None


def test_finish_reason_content_filter_is_incomplete_for_content_filter():
    _, response = translate(completion({"content": "I"}, "content_filter"))
    assert (response.status, response.incomplete_details.reason) == ("incomplete", "content_filter")


def test_empty_answer_has_no_output_items():
    _, response = translate(completion({"content": ""}))
    assert response.output == []
    assert response.status == "completed"


# --- usage --------------------------------------------------------------------


def test_usage_keeps_cached_and_reasoning_tokens():
    _, response = translate(completion({"content": "x"}, usage=USAGE))
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (20, 10, 30)
    assert usage.input_tokens_details.cached_tokens == 16
    assert usage.output_tokens_details.reasoning_tokens == 4


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30},
        {
            "prompt_tokens": 20,
            "completion_tokens": 10,
            "total_tokens": 30,
            "prompt_tokens_details": None,
            "completion_tokens_details": None,
        },
    ],
    ids=["absent", "null"],
)
def test_usage_without_details_reports_zero_details(usage):
    _, response = translate(completion({"content": "x"}, usage=usage))
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert response.usage.total_tokens == 30


def test_missing_usage_reports_zeros():
    _, response = translate(completion({"content": "x"}))
    assert response.usage.model_dump()["total_tokens"] == 0
    assert response.usage.input_tokens_details.cached_tokens == 0


def test_missing_total_is_the_sum():
    usage = usage_from_chat({"prompt_tokens": 7, "completion_tokens": 5})
    assert usage["total_tokens"] == 12


# --- new_response: the request echo -------------------------------------------


def test_new_response_is_an_in_progress_response_object():
    response = new_response({"model": "fake-model"}, "resp_1", CREATED_AT)
    assert validated(response).status == "in_progress"
    assert (response["id"], response["object"], response["created_at"]) == (
        "resp_1",
        "response",
        CREATED_AT,
    )
    assert response["output"] == [] and response["usage"] is None
    assert response["error"] is None and response["incomplete_details"] is None


def test_new_response_reports_the_api_defaults_for_fields_not_sent():
    response = new_response({"model": "fake-model", "input": "hi"}, "resp_1", CREATED_AT)
    assert {name: response[name] for name in API_DEFAULTS} == API_DEFAULTS


def test_new_response_echoes_every_field_the_request_sent():
    request = load_fixture("full_create_request")
    del request["conversation"]  # reported as an object: see the test below
    response = new_response(validate_create_request(request), "resp_1", CREATED_AT)
    validated(response)
    assert {name: response[name] for name in ECHOED_AS_SENT} == {
        name: request[name] for name in ECHOED_AS_SENT
    }


def test_new_response_echoes_the_prompt_reference():
    request = validate_create_fields(load_fixture("full_create_request"))
    assert new_response(request, "resp_1", CREATED_AT).get("prompt") == request["prompt"]


@pytest.mark.parametrize("conversation", ["conv_1", {"id": "conv_1"}], ids=["id", "object"])
def test_new_response_reports_the_conversation_as_an_object(conversation):
    request = validate_create_request({"model": "fake-model", "conversation": conversation})
    response = new_response(request, "resp_1", CREATED_AT)
    assert response["conversation"] == {"id": "conv_1"}
    validated(response)


def test_new_response_fills_text_and_reasoning_defaults_around_what_was_sent():
    request = {"model": "m", "text": {"verbosity": "low"}, "reasoning": {"effort": "high"}}
    response = new_response(request, "resp_1", CREATED_AT)
    assert response["text"] == {"format": {"type": "text"}, "verbosity": "low"}
    assert response["reasoning"] == {"effort": "high", "summary": None}
