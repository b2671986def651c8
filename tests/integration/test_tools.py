"""Tools through the gateway: function loops, tool_choice, custom/local_shell/hosted tools,
history repair, and reasoning replay (including Codex's store:false encrypted reasoning).

The backend side is asserted message by message: what a strict Chat
Completions server receives must be a valid, ordered conversation.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import fakebackend as fb
from tests.conftest import sdk_for
from tests.integration.helpers import (
    WEATHER_TOOL,
    assert_chat_body_clean,
    assert_nothing_stored,
    assert_refused,
    create,
    last_chat,
    stream,
)

PARIS = json.dumps({"city": "Paris"})
PATCH = "*** Begin Patch\n*** Update File: app.py\n-old\n+new\n*** End Patch\n"
PATCH_GRAMMAR = 'start: "*** Begin Patch" LF body "*** End Patch" LF?\nbody: /(.|\\n)*/\n'
APPLY_PATCH_TOOL = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Apply a patch to the working tree.",
    "format": {"type": "grammar", "syntax": "lark", "definition": PATCH_GRAMMAR},
}
# Hosted tools the gateway does not run (file_search it does: test_file_search.py).
HOSTED_TOOLS = [
    {"type": "web_search"},
    {"type": "code_interpreter", "container": {"type": "auto"}},
    {
        "type": "mcp",
        "server_label": "docs",
        "server_url": "http://127.0.0.1:9/mcp",
        "require_approval": "never",
    },
    {"type": "image_generation"},
]
DROPPED_HEADER = "x-gateway-dropped-tools"
USER_PARIS = {"role": "user", "content": "Weather in Paris?"}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def chat_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A Chat `tool_calls` entry, as the backend must receive it."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_message(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def function_output(call_id: str, output: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def weather_call(call_id: str) -> fb.Reply:
    return fb.tool_calls([{"id": call_id, "name": "get_weather", "arguments": PARIS}])


def test_tool_loop_through_previous_response_id(make_app, store_settings, backend):
    sdk = sdk_for(make_app(**store_settings))
    backend.enqueue(weather_call("call_w1"), fb.text("Sunny in Paris."), fb.text("You're welcome."))
    first = create(sdk, input="Weather in Paris?", tools=[WEATHER_TOOL])
    [call] = first.response.output
    assert (call.type, call.call_id, call.name) == ("function_call", "call_w1", "get_weather")
    assert call.arguments == PARIS

    second = create(
        sdk,
        previous_response_id=first.response.id,
        input=[function_output(call.call_id, '{"sky": "sunny"}')],
        tools=[WEATHER_TOOL],
    )
    replayed = [
        USER_PARIS,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [chat_call("call_w1", "get_weather", PARIS)],
        },
        tool_message("call_w1", '{"sky": "sunny"}'),
    ]
    assert last_chat(backend)["messages"] == replayed
    assert second.response.output_text == "Sunny in Paris."

    create(sdk, previous_response_id=second.response.id, input="Thanks!", tools=[WEATHER_TOOL])
    assert last_chat(backend)["messages"] == replayed + [
        {"role": "assistant", "content": "Sunny in Paris."},
        user("Thanks!"),
    ]


def test_parallel_tool_calls_come_back_and_replay_in_order(sdk, backend):
    backend.enqueue(
        fb.tool_calls(
            [
                {"id": "call_a", "name": "get_weather", "arguments": {"city": "Paris"}},
                {"id": "call_b", "name": "get_weather", "arguments": {"city": "Rome"}},
            ]
        )
    )
    first = create(sdk, input="Paris and Rome?", tools=[WEATHER_TOOL], parallel_tool_calls=True)
    assert last_chat(backend)["parallel_tool_calls"] is True
    calls = first.response.output
    assert [(c.type, c.call_id) for c in calls] == [
        ("function_call", "call_a"),
        ("function_call", "call_b"),
    ]
    create(
        sdk,
        previous_response_id=first.response.id,
        input=[function_output("call_a", "sunny"), function_output("call_b", "rainy")],
        tools=[WEATHER_TOOL],
    )
    assert last_chat(backend)["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [chat_call(c.call_id, c.name, c.arguments) for c in calls],
        },
        tool_message("call_a", "sunny"),
        tool_message("call_b", "rainy"),
    ]


@pytest.mark.parametrize(
    ("tool_choice", "chat_choice"),
    [
        (
            {"type": "function", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
        ("required", "required"),
        ("none", "none"),
        ("auto", "auto"),
    ],
    ids=["named", "required", "none", "auto"],
)
def test_tool_choice_is_translated(sdk, backend, tool_choice, chat_choice):
    created = create(sdk, input="Hi", tools=[WEATHER_TOOL], tool_choice=tool_choice)
    assert last_chat(backend)["tool_choice"] == chat_choice
    assert created.body["tool_choice"] == tool_choice


def test_named_tool_choice_missing_from_tools_is_refused(app, sdk, backend):
    error = assert_refused(
        app,
        backend,
        lambda: create(
            sdk,
            input="Hi",
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "name": "get_time"},
        ),
        400,
    )
    assert error["param"] == "tool_choice"


def test_strict_function_tool_is_forwarded_and_echoed(sdk, backend):
    strict_tool = {**WEATHER_TOOL, "strict": True}
    created = create(sdk, input="Hi", tools=[strict_tool])
    [chat_tool] = last_chat(backend)["tools"]
    assert chat_tool == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": WEATHER_TOOL["description"],
            "parameters": WEATHER_TOOL["parameters"],
            "strict": True,
        },
    }
    assert created.response.tools[0].strict is True


def test_custom_tool_round_trip(sdk, backend):
    backend.enqueue(
        fb.tool_calls([{"id": "call_p", "name": "apply_patch", "arguments": {"input": PATCH}}])
    )
    first = create(sdk, input="Rename old to new.", tools=[APPLY_PATCH_TOOL])
    [chat_tool] = last_chat(backend)["tools"]
    assert chat_tool["type"] == "function" and chat_tool["function"]["name"] == "apply_patch"
    parameters = chat_tool["function"]["parameters"]
    [(argument, schema)] = parameters["properties"].items()
    assert (parameters["type"], schema["type"], parameters["required"]) == (
        "object",
        "string",
        [argument],
    )
    [call] = first.body["output"]
    assert call["type"] == "custom_tool_call"
    assert (call["call_id"], call["name"], call["input"]) == ("call_p", "apply_patch", PATCH)

    output = {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Applied."}
    create(sdk, previous_response_id=first.response.id, input=[output], tools=[APPLY_PATCH_TOOL])
    assistant, tool = last_chat(backend)["messages"][1:]
    [replayed_call] = assistant["tool_calls"]
    assert (replayed_call["id"], replayed_call["function"]["name"]) == ("call_p", "apply_patch")
    assert json.loads(replayed_call["function"]["arguments"]) == {argument: PATCH}
    assert tool == tool_message("call_p", "Applied.")


def test_local_shell_round_trip(sdk, backend):
    arguments = {"command": ["ls", "-la"], "working_directory": "/tmp"}
    backend.enqueue(
        fb.tool_calls([{"id": "call_ls", "name": "local_shell", "arguments": arguments}])
    )
    first = create(sdk, input="List files.", tools=[{"type": "local_shell"}])
    [chat_tool] = last_chat(backend)["tools"]
    assert chat_tool["function"]["name"] == "local_shell"
    assert "command" in chat_tool["function"]["parameters"]["properties"]
    [call] = first.body["output"]
    assert (call["type"], call["call_id"]) == ("local_shell_call", "call_ls")
    assert call["action"]["type"] == "exec"
    assert call["action"]["command"] == ["ls", "-la"]
    assert call["action"]["working_directory"] == "/tmp"

    output = {"type": "local_shell_call_output", "id": "call_ls", "output": "total 0"}
    create(
        sdk, previous_response_id=first.response.id, input=[output], tools=[{"type": "local_shell"}]
    )
    assistant, tool = last_chat(backend)["messages"][1:]
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_ls"]
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"])["command"] == [
        "ls",
        "-la",
    ]
    assert tool == tool_message("call_ls", "total 0")


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_hosted_tools_are_left_out_and_reported(sdk, backend, streamed):
    send = stream if streamed else create
    result = send(sdk, input="Search the web.", tools=[WEATHER_TOOL, *HOSTED_TOOLS])
    assert [tool["function"]["name"] for tool in last_chat(backend)["tools"]] == ["get_weather"]
    dropped = [name.strip() for name in result.headers[DROPPED_HEADER].split(",")]
    assert dropped == [tool["type"] for tool in HOSTED_TOOLS]
    assert [tool.type for tool in result.response.tools] == ["function"] + dropped


def test_no_dropped_tools_header_when_nothing_is_dropped(sdk):
    assert DROPPED_HEADER not in create(sdk, input="Hi", tools=[WEATHER_TOOL]).headers


@pytest.mark.parametrize("hosted", HOSTED_TOOLS, ids=[tool["type"] for tool in HOSTED_TOOLS])
def test_hosted_tools_are_refused_when_configured(make_app, backend, hosted):
    app = make_app(reject_unsupported_tools=True)
    error = assert_refused(
        app,
        backend,
        lambda: create(sdk_for(app), input="Hi", tools=[WEATHER_TOOL, hosted]),
        400,
    )
    assert error["param"] == "tools"


def test_call_without_output_gets_a_placeholder(sdk, backend):
    lost_call = {
        "type": "function_call",
        "call_id": "call_lost",
        "name": "get_weather",
        "arguments": PARIS,
    }
    create(sdk, input=[USER_PARIS, lost_call, user("Never mind.")], tools=[WEATHER_TOOL])
    messages = last_chat(backend)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "user"]
    assert messages[1]["tool_calls"] == [chat_call("call_lost", "get_weather", PARIS)]
    assert messages[2]["tool_call_id"] == "call_lost"
    assert isinstance(messages[2]["content"], str) and messages[2]["content"]


def test_abandoned_call_in_the_chain_gets_a_placeholder(sdk, backend):
    backend.enqueue(weather_call("call_gone"))
    first = create(sdk, input="Weather in Paris?", tools=[WEATHER_TOOL])
    create(sdk, previous_response_id=first.response.id, input="Forget it.", tools=[WEATHER_TOOL])
    messages = last_chat(backend)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "user"]
    assert messages[2]["tool_call_id"] == "call_gone"


def test_orphan_output_is_dropped(sdk, backend):
    orphan = function_output("call_unknown", "stale result")
    create(sdk, input=[user("First."), orphan, user("Second.")], tools=[WEATHER_TOOL])
    assert last_chat(backend)["messages"] == [user("First."), user("Second.")]


def test_no_empty_assistant_message_is_sent(sdk, backend):
    lone_reasoning = {
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "Hmm."}],
    }
    create(
        sdk,
        input=[
            user("One."),
            {"role": "assistant", "content": ""},
            {"role": "assistant", "content": []},
            lone_reasoning,
            user("Two."),
        ],
    )
    chat = last_chat(backend)
    assert_chat_body_clean(chat)
    assert chat["messages"] == [user("One."), user("Two.")]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_input_rides_on_the_next_assistant_turn(make_app, backend, field):
    sdk = sdk_for(make_app(backends=[{"base_url": backend.base_url, "reasoning_field": field}]))
    thought = {
        "type": "reasoning",
        "id": "rs_client_1",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "Recall the capital."}],
    }
    answer = {
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Paris.", "annotations": []}],
    }
    create(sdk, input=[user("Capital of France?"), thought, answer, user("And Italy?")])
    assert last_chat(backend)["messages"] == [
        user("Capital of France?"),
        {"role": "assistant", "content": "Paris.", field: "Recall the capital."},
        user("And Italy?"),
    ]


def test_stored_reasoning_is_replayed_with_its_tool_call(sdk, backend):
    backend.enqueue(
        fb.tool_calls(
            [{"id": "call_r", "name": "get_weather", "arguments": PARIS}], reasoning="Need data."
        )
    )
    first = create(sdk, input="Weather in Paris?", tools=[WEATHER_TOOL])
    assert [item.type for item in first.response.output] == ["reasoning", "function_call"]
    create(
        sdk,
        previous_response_id=first.response.id,
        input=[function_output("call_r", "sunny")],
        tools=[WEATHER_TOOL],
    )
    assistant = last_chat(backend)["messages"][1]
    assert assistant["reasoning_content"] == "Need data."
    assert [call["id"] for call in assistant["tool_calls"]] == ["call_r"]


def test_codex_store_false_reasoning_round_trip(app, sdk, backend):
    secret = "Secret plan: patch app.py first."
    backend.enqueue(fb.text("Patched.", reasoning=secret), fb.text("Done."))
    include = ["reasoning.encrypted_content"]
    first = stream(sdk, input=[user("Fix app.py")], store=False, include=include)
    reasoning, message = first.events[-1]["response"]["output"]
    [done_event] = [
        e for e in first.of_type("response.output_item.done") if e["item"]["type"] == "reasoning"
    ]
    blob = reasoning["encrypted_content"]
    assert blob and done_event["item"]["encrypted_content"] == blob
    assert secret not in blob and "Secret plan" not in blob

    replayed_reasoning = {
        "type": "reasoning",
        "id": reasoning["id"],
        "summary": [],
        "encrypted_content": blob,
    }
    replayed_message = {
        "type": "message",
        "id": message["id"],
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Patched.", "annotations": []}],
    }
    second = stream(
        sdk,
        input=[user("Fix app.py"), replayed_reasoning, replayed_message, user("Thanks")],
        store=False,
        include=include,
    )
    assert second.response.status == "completed"
    assert last_chat(backend)["messages"] == [
        user("Fix app.py"),
        {"role": "assistant", "content": "Patched.", "reasoning_content": secret},
        user("Thanks"),
    ]
    assert_nothing_stored(app)
