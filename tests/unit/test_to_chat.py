"""Responses request + history -> Chat Completions body (app/protocol/chat/request.py, history.py).

Every translated body goes through `chat_body`, which also checks what a
strict Chat backend demands of the messages: each one validates as the
SDK's `ChatCompletionMessageParam`, every tool call is answered by exactly
one tool message right after its assistant turn, no tool message without
a call, and no assistant message with neither content nor tool calls.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from openai.types.chat import ChatCompletionMessageParam
from openai.types.chat.completion_create_params import CompletionCreateParamsBase

from app.protocol.chat.history import LOCAL_SHELL_TOOL, MISSING_OUTPUT
from app.protocol.chat.request import ChatOptions, ChatRequest, to_chat_request
from tests.unit.fixtures import load_fixture

MESSAGE_ADAPTER = pydantic.TypeAdapter(ChatCompletionMessageParam)
CHAT_PARAMETERS = set(CompletionCreateParamsBase.__annotations__) | {"stream"}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather of a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}
IMAGE_URL = "https://example.com/cat.png"
DATA_URL = "data:image/png;base64,iVBORw0KGgo="


def translate(
    items: list[dict[str, Any]] | None = None,
    stream: bool = False,
    options: ChatOptions | None = None,
    **request: Any,
) -> ChatRequest:
    """Translate a request (model + `request` fields) replaying `items`; check the history."""
    items = [user("hi")] if items is None else items
    chat = to_chat_request(
        {"model": "fake-model", **request}, items, options or ChatOptions(), stream=stream
    )
    assert chat.body["model"] == "fake-model"
    assert_valid_chat_history(chat.body["messages"])
    return chat


def chat_body(items: list[dict[str, Any]] | None = None, **kwargs: Any) -> dict[str, Any]:
    return translate(items, **kwargs).body


def messages_of(items: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
    return chat_body(items, **kwargs)["messages"]


def assert_valid_chat_history(messages: list[dict[str, Any]]) -> None:
    """What strict Chat backends (vLLM, OpenAI) check before they answer 400."""
    expected_outputs: list[str] = []
    for message in messages:
        MESSAGE_ADAPTER.validate_python(message)
        if message["role"] == "tool":
            assert expected_outputs, f"tool message without a preceding call: {message}"
            assert message["tool_call_id"] == expected_outputs.pop(0), "tool message out of order"
            continue
        assert not expected_outputs, f"calls {expected_outputs} not answered before {message}"
        if message["role"] == "assistant":
            calls = message.get("tool_calls") or []
            assert message.get("content") or calls, f"empty assistant message: {message}"
            expected_outputs = [call["id"] for call in calls]
    assert not expected_outputs, f"calls {expected_outputs} never answered"


def user(content: Any) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": content}


def assistant(text: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": []}
    return {"type": "message", "role": "assistant", "content": [part]}


def call(call_id: str, name: str = "get_weather", arguments: str = '{"city":"Paris"}') -> dict:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def output(call_id: str, text: Any = "18C") -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": text}


def reasoning(text: str, field: str = "content") -> dict[str, Any]:
    part_type = "reasoning_text" if field == "content" else "summary_text"
    item = {"type": "reasoning", "id": "rs_1", "summary": []}
    item[field] = [{"type": part_type, "text": text}]
    return item


def chat_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_message(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


# --- messages -----------------------------------------------------------------


def test_instructions_become_the_first_system_message():
    items = [{"type": "message", "role": "developer", "content": "Use metric."}, user("hi")]
    assert messages_of(items, instructions="Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Use metric."},
        {"role": "user", "content": "hi"},
    ]


def test_no_instructions_no_system_message():
    assert messages_of([user("hi")]) == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("role", ["developer", "system"])
def test_developer_and_system_messages_become_system(role):
    items = [{"type": "message", "role": role, "content": "Rules."}, user("hi")]
    assert messages_of(items)[0] == {"role": "system", "content": "Rules."}


def test_easy_message_without_type_is_a_message():
    assert messages_of([{"role": "user", "content": "hi"}]) == [{"role": "user", "content": "hi"}]


def test_string_content_stays_a_string():
    assert messages_of([user("plain")])[0]["content"] == "plain"


def test_text_only_parts_become_one_string():
    parts = [{"type": "input_text", "text": "first"}, {"type": "input_text", "text": "second"}]
    assert messages_of([user(parts)])[0]["content"] == "first\nsecond"


def test_images_become_image_url_parts():
    parts = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": IMAGE_URL, "detail": "high"},
        {"type": "input_image", "image_url": DATA_URL, "detail": "original"},
    ]
    assert messages_of([user(parts)])[0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "high"}},
        {"type": "image_url", "image_url": {"url": DATA_URL}},
    ]


def test_input_file_with_data_becomes_a_file_part():
    file_part = {
        "type": "input_file",
        "filename": "a.txt",
        "file_data": "data:text/plain;base64,aA==",
    }
    content = messages_of([user([{"type": "input_text", "text": "Read."}, file_part])])[0][
        "content"
    ]
    assert content[1] == {
        "type": "file",
        "file": {"file_data": "data:text/plain;base64,aA==", "filename": "a.txt"},
    }


def test_assistant_items_fold_into_one_assistant_message_with_tool_calls():
    items = [user("weather?"), assistant("Checking."), call("call_a"), call("call_b")]
    items += [output("call_a", "18C"), output("call_b", "20C")]
    assert messages_of(items)[1:] == [
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                chat_call("call_a", "get_weather", '{"city":"Paris"}'),
                chat_call("call_b", "get_weather", '{"city":"Paris"}'),
            ],
        },
        tool_message("call_a", "18C"),
        tool_message("call_b", "20C"),
    ]


def test_assistant_turn_with_only_tool_calls_has_null_content():
    message = messages_of([user("weather?"), call("call_a"), output("call_a")])[1]
    assert message["content"] is None
    assert [c["id"] for c in message["tool_calls"]] == ["call_a"]


def test_function_call_output_becomes_a_tool_message():
    messages = messages_of([user("q"), call("call_a"), output("call_a", "18C and sunny")])
    assert messages[-1] == tool_message("call_a", "18C and sunny")


def test_function_call_output_parts_become_text():
    parts = [{"type": "input_text", "text": "18C"}]
    assert messages_of([user("q"), call("call_a"), output("call_a", parts)])[-1]["content"] == "18C"


def test_full_fixture_history_translates_into_valid_chat_messages():
    request = load_fixture("full_create_request")
    messages = messages_of(request.pop("input"), **request)
    assert [m["role"] for m in messages] == [
        "system",  # instructions
        "system",
        "system",  # developer
        "user",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]


# --- tools --------------------------------------------------------------------


def test_function_tool_keeps_name_description_parameters_and_strict():
    assert chat_body(tools=[WEATHER])["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather of a city.",
                "parameters": WEATHER["parameters"],
                "strict": True,
            },
        }
    ]


def test_function_tool_without_parameters_gets_an_empty_object_schema():
    tool = {"type": "function", "name": "now"}
    parameters = chat_body(tools=[tool])["tools"][0]["function"]["parameters"]
    assert parameters["type"] == "object"


def test_custom_tool_becomes_a_function_with_one_string_parameter_and_its_grammar():
    grammar = 'start: "*** Begin Patch" /(.|\\n)*/ "*** End Patch"'
    tool = {
        "type": "custom",
        "name": "apply_patch",
        "description": "Edit files.",
        "format": {"type": "grammar", "syntax": "lark", "definition": grammar},
    }
    function = chat_body(tools=[tool])["tools"][0]["function"]
    assert function["name"] == "apply_patch"
    assert "Edit files." in function["description"]
    assert "lark" in function["description"] and grammar in function["description"]
    parameters = function["parameters"]
    assert list(parameters["properties"]) == ["input"]
    assert parameters["properties"]["input"]["type"] == "string"
    assert parameters["required"] == ["input"]


def test_custom_tool_without_description_still_describes_its_input():
    function = chat_body(tools=[{"type": "custom", "name": "free"}])["tools"][0]["function"]
    assert function["description"]


def test_custom_tool_call_history_travels_as_input_argument():
    item = {"type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch", "input": "diff"}
    done = {"type": "custom_tool_call_output", "call_id": "call_p", "output": "applied"}
    messages = messages_of([user("patch it"), item, done])
    tool_call = messages[1]["tool_calls"][0]
    assert tool_call["function"]["name"] == "apply_patch"
    assert json.loads(tool_call["function"]["arguments"]) == {"input": "diff"}
    assert messages[2] == tool_message("call_p", "applied")


def test_local_shell_tool_becomes_a_function_taking_a_command_array():
    tools = chat_body(tools=[{"type": "local_shell"}])["tools"]
    function = tools[0]["function"]
    assert function["name"] == LOCAL_SHELL_TOOL
    assert function["parameters"]["properties"]["command"]["type"] == "array"
    assert function["parameters"]["required"] == ["command"]


def test_local_shell_call_history_becomes_a_tool_call_and_tool_message():
    action = {"type": "exec", "command": ["ls"], "env": {}, "timeout_ms": None, "user": None}
    shell = {
        "type": "local_shell_call",
        "call_id": "call_s",
        "status": "completed",
        "action": action,
    }
    done = {"type": "local_shell_call_output", "id": "call_s", "output": "a.txt"}
    messages = messages_of([user("list"), shell, done])
    tool_call = messages[1]["tool_calls"][0]
    assert tool_call["id"] == "call_s"
    assert tool_call["function"]["name"] == LOCAL_SHELL_TOOL
    assert json.loads(tool_call["function"]["arguments"]) == {"command": ["ls"], "env": {}}
    assert messages[2] == tool_message("call_s", "a.txt")


def test_hosted_tools_are_dropped_and_reported():
    hosted = [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs_1"]}]
    chat = translate(tools=[hosted[0], WEATHER, hosted[1]])
    assert [tool["function"]["name"] for tool in chat.body["tools"]] == ["get_weather"]
    assert chat.dropped_tools == ["web_search", "file_search"]


def test_only_hosted_tools_leave_no_tool_fields():
    chat = translate(
        tools=[{"type": "web_search"}], tool_choice="required", parallel_tool_calls=False
    )
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(chat.body)
    assert chat.dropped_tools == ["web_search"]


def test_tool_kinds_name_each_client_tool():
    tools = [WEATHER, {"type": "custom", "name": "apply_patch"}, {"type": "local_shell"}]
    assert translate(tools=tools).tool_kinds == {
        "get_weather": "function",
        "apply_patch": "custom",
        LOCAL_SHELL_TOOL: "local_shell",
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        (
            {"type": "function", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
        (
            {"type": "custom", "name": "apply_patch"},
            {"type": "function", "function": {"name": "apply_patch"}},
        ),
        ({"type": "local_shell"}, {"type": "function", "function": {"name": LOCAL_SHELL_TOOL}}),
        ({"type": "allowed_tools", "mode": "required", "tools": []}, "required"),
        ({"type": "allowed_tools", "mode": "auto", "tools": []}, "auto"),
        ({"type": "web_search_preview"}, "auto"),
    ],
    ids=str,
)
def test_tool_choice_is_mapped(choice, expected):
    tools = [WEATHER, {"type": "custom", "name": "apply_patch"}, {"type": "local_shell"}]
    assert chat_body(tools=tools, tool_choice=choice)["tool_choice"] == expected


def test_no_tool_choice_is_left_to_the_backend():
    assert "tool_choice" not in chat_body(tools=[WEATHER])


@pytest.mark.parametrize("parallel", [True, False])
def test_parallel_tool_calls_passes_through_with_tools(parallel):
    assert (
        chat_body(tools=[WEATHER], parallel_tool_calls=parallel)["parallel_tool_calls"] is parallel
    )


# --- sampling and formats -----------------------------------------------------


def test_json_object_format_becomes_response_format():
    body = chat_body(text={"format": {"type": "json_object"}})
    assert body["response_format"] == {"type": "json_object"}


def test_json_schema_format_becomes_response_format():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    fmt = {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}
    fmt["description"] = "The answer."
    assert chat_body(text={"format": fmt})["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "schema": schema,
            "strict": True,
            "description": "The answer.",
        },
    }


def test_text_format_sends_no_response_format():
    body = chat_body(text={"format": {"type": "text"}, "verbosity": "low"})
    assert "response_format" not in body and "verbosity" not in body


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_output_tokens_goes_into_the_configured_field(field):
    body = chat_body(max_output_tokens=64, options=ChatOptions(max_tokens_field=field))
    assert body[field] == 64
    assert not {"max_tokens", "max_completion_tokens", "max_output_tokens"} - {field} & set(body)


def test_sampling_fields_pass_through():
    body = chat_body(temperature=0.2, top_p=0.5, user="u-1", top_logprobs=3)
    assert (body["temperature"], body["top_p"], body["user"]) == (0.2, 0.5, "u-1")
    assert (body["logprobs"], body["top_logprobs"]) == (True, 3)


def test_reasoning_effort_becomes_reasoning_effort():
    body = chat_body(reasoning={"effort": "high", "summary": "auto"})
    assert body["reasoning_effort"] == "high"
    assert "reasoning" not in body


def test_reasoning_effort_none_adds_the_backends_thinking_switch():
    switch = (("chat_template_kwargs", {"enable_thinking": False}),)
    body = chat_body(reasoning={"effort": "none"}, options=ChatOptions(thinking_off=switch))
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert "chat_template_kwargs" not in chat_body(
        reasoning={"effort": "low"}, options=ChatOptions(thinking_off=switch)
    )


def test_no_reasoning_no_reasoning_effort():
    assert "reasoning_effort" not in chat_body()


def test_stream_adds_include_usage():
    body = chat_body(stream=True)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_no_stream_no_stream_fields():
    assert not {"stream", "stream_options"} & set(chat_body(stream=False))


def test_every_field_sent_is_a_chat_completions_parameter():
    request = load_fixture("full_create_request")
    body = chat_body(request.pop("input"), stream=request.pop("stream"), **request)
    assert set(body) <= CHAT_PARAMETERS, set(body) - CHAT_PARAMETERS
    assert not {"metadata", "store", "include", "text", "truncation", "max_tool_calls"} & set(body)


# --- reasoning in history -----------------------------------------------------


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_item_rides_on_the_following_tool_call_turn(field):
    items = [user("weather?"), reasoning("Need the tool."), call("call_a"), output("call_a")]
    message = messages_of(items, options=ChatOptions(reasoning_field=field))[1]
    assert message[field] == "Need the tool."
    assert message["tool_calls"][0]["id"] == "call_a"
    assert {"reasoning", "reasoning_content"} - {field} & set(message) == set()


def test_reasoning_item_rides_on_the_following_assistant_message():
    messages = messages_of([user("2+2?"), reasoning("Add them."), assistant("4")])
    assert messages[1] == {"role": "assistant", "content": "4", "reasoning_content": "Add them."}


def test_reasoning_summary_is_used_when_there_is_no_content():
    messages = messages_of([user("2+2?"), reasoning("Summed.", field="summary"), assistant("4")])
    assert messages[1]["reasoning_content"] == "Summed."


def test_reasoning_after_an_assistant_message_goes_to_the_next_turn():
    items = [user("q"), assistant("Let me look."), reasoning("Now call."), call("call_a")]
    items.append(output("call_a"))
    messages = messages_of(items)
    assert "reasoning_content" not in messages[1]
    assert messages[2]["reasoning_content"] == "Now call."


def test_reasoning_without_a_following_assistant_turn_makes_no_message():
    messages = messages_of([user("q"), reasoning("Hmm."), user("again")])
    assert messages == [{"role": "user", "content": "q"}, {"role": "user", "content": "again"}]


def test_reasoning_with_no_text_is_ignored():
    item = {"type": "reasoning", "id": "rs_x", "summary": [], "encrypted_content": "gwr1.opaque"}
    messages = messages_of([user("q"), item, assistant("a")])
    assert messages[1] == {"role": "assistant", "content": "a"}


# --- history repair -----------------------------------------------------------


def test_call_without_output_gets_a_placeholder():
    messages = messages_of([user("q"), call("call_a"), user("never mind")])
    assert messages[2] == tool_message("call_a", MISSING_OUTPUT)
    assert messages[3] == {"role": "user", "content": "never mind"}


def test_orphan_output_is_dropped():
    messages = messages_of([user("q"), output("call_unknown"), assistant("ok")])
    assert [m["role"] for m in messages] == ["user", "assistant"]


def test_outputs_are_moved_right_after_their_calls_in_call_order():
    items = [user("q"), call("call_a"), call("call_b"), user("interrupting")]
    items += [output("call_b", "B"), output("call_a", "A")]
    messages = messages_of(items)
    assert messages[2:] == [
        tool_message("call_a", "A"),
        tool_message("call_b", "B"),
        {"role": "user", "content": "interrupting"},
    ]


def test_duplicate_outputs_keep_one_tool_message():
    messages = messages_of(
        [user("q"), call("call_a"), output("call_a", "1"), output("call_a", "2")]
    )
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]


@pytest.mark.parametrize(
    "empty",
    [
        {"type": "message", "role": "assistant", "content": ""},
        {"type": "message", "role": "assistant", "content": []},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": ""}]},
    ],
    ids=["empty-string", "no-parts", "empty-part"],
)
def test_empty_assistant_message_is_never_sent(empty):
    messages = messages_of([user("q"), empty, reasoning("thinking"), user("again")])
    assert [m["role"] for m in messages] == ["user", "user"]


def test_item_reference_left_unresolved_sends_nothing():
    messages = messages_of([user("q"), {"type": "item_reference", "id": "msg_1"}])
    assert messages == [{"role": "user", "content": "q"}]
