"""The streaming state machine: a response's loop (app/services/response_loop.py) over its
`ResponseEmitter` (app/protocol/responses/events.py) and a Chat `ChatTurn`
(app/protocol/chat/stream.py), fed the backend's body as SSE bytes.

Realistic Chat chunk sequences (tests/unit/fixtures/chat_streams.json:
OpenAI, vLLM, Gemini-style and Qwen answers) go through the translator;
every resulting stream must pass `tests.events.assert_valid_event_stream`,
and each test then checks what its sequence is about. The last section
shows that the checker itself catches broken streams.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import Response

from app.errors import BackendTimeout, BadGateway, upstream_error
from app.protocol.chat.stream import ChatTurn
from app.protocol.ids import new_id
from app.protocol.responses.events import ResponseEmitter
from app.protocol.responses.objects import new_response
from app.services.response_loop import ResponseLoop
from tests.events import assert_valid_event_stream
from tests.unit.fixtures import load_fixture

STREAMS = load_fixture("chat_streams")
FINISHED_STREAMS = [name for name in STREAMS if name != "cut"]
TOOL_KINDS = {
    "get_weather": "function",
    "get_time": "function",
    "apply_patch": "custom",
    "local_shell": "local_shell",
}
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello\n*** End Patch"
BROKEN = {"message": "Backend 'default' stream broke off", "code": "server_error"}


def make_translator(
    reasoning_field: str = "reasoning_content",
    finalize_item: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> ResponseLoop:
    response = new_response({"model": "fake-model", "input": "hi"}, new_id("resp"), 1732320000)
    emitter = ResponseEmitter(response, finalize_item)
    return ResponseLoop(emitter, ChatTurn(emitter, TOOL_KINDS, reasoning_field))


def sse(chunk: dict[str, Any]) -> bytes:
    """A Chat chunk as the backend's body carries it."""
    return f"data: {json.dumps(chunk)}\n\n".encode()


def feed_all(translator: ResponseLoop, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Start the stream and feed each chunk as the SSE bytes it arrives as, a read each."""
    events = translator.start()
    for chunk in chunks:
        translator.feed(sse(chunk), events)
    return events


def run(chunks: list[dict[str, Any]], **options: Any) -> tuple[list[dict[str, Any]], Response]:
    """Translate a whole backend answer; return the checked events and final response."""
    translator = make_translator(**options)
    events = feed_all(translator, chunks)
    assert translator.turn.finished
    events += translator.finish()
    events.append(translator.terminal_event())
    return events, assert_valid_event_stream(events)


def run_failed(chunks: list[dict[str, Any]], error: dict[str, Any] = BROKEN):
    """Translate an answer that broke off; end it as the service does, with fail()."""
    translator = make_translator()
    events = feed_all(translator, chunks)
    assert not translator.turn.finished
    events += translator.fail(error)
    events.append(translator.terminal_event())
    return events, assert_valid_event_stream(events)


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == event_type]


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """A minimal Chat chunk, for variations the fixtures do not cover."""
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [choice],
        **extra,
    }


# --- fixtures and invariants --------------------------------------------------


@pytest.mark.parametrize("name", list(STREAMS))
def test_fixture_chunks_are_valid_chat_completion_chunks(name):
    for item in STREAMS[name]:
        ChatCompletionChunk.model_validate(item)


@pytest.mark.parametrize("name", FINISHED_STREAMS)
def test_every_fixture_stream_keeps_the_event_invariants(name):
    events, response = run(STREAMS[name])
    assert events[0]["sequence_number"] == 0
    assert response.usage is not None


@pytest.mark.parametrize("name", FINISHED_STREAMS)
def test_ids_are_unique_and_shaped_like_the_api(name):
    _, response = run(STREAMS[name])
    prefixes = {"message": "msg_", "reasoning": "rs_", "function_call": "fc_"}
    prefixes |= {"custom_tool_call": "ctc_", "local_shell_call": "lsh_"}
    ids = [item.id for item in response.output]
    assert len(set(ids)) == len(ids)
    for item in response.output:
        assert item.id.startswith(prefixes[item.type])
    assert response.id.startswith("resp_")


# --- text and reasoning -------------------------------------------------------


def test_text_stream_emits_the_api_event_sequence():
    events, _ = run(STREAMS["openai_text"])
    assert types_of(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 5,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_text_done_equals_the_concatenated_deltas():
    events, response = run(STREAMS["openai_text"])
    deltas = [event["delta"] for event in of_type(events, "response.output_text.delta")]
    assert deltas == ["Hel", "lo", ", wor", "ld", "!"]
    assert of_type(events, "response.output_text.done")[0]["text"] == "Hello, world!"
    assert response.output_text == "Hello, world!"


def test_output_text_carries_empty_annotations_everywhere():
    events, response = run(STREAMS["openai_text"])
    parts = [event["part"] for event in of_type(events, "response.content_part.done")]
    parts += [
        part
        for event in of_type(events, "response.output_item.done")
        for part in event["item"]["content"]
    ]
    parts += [part.model_dump() for part in response.output[0].content]
    assert parts and all(part["annotations"] == [] for part in parts)


def test_empty_role_chunk_opens_no_item():
    translator = make_translator()
    events = feed_all(translator, [chunk({"role": "assistant", "content": ""})])
    assert types_of(events) == ["response.created", "response.in_progress"]


def test_usage_chunk_without_choices_fills_usage_with_details():
    _, response = run(STREAMS["openai_text"])
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (12, 5, 17)
    assert usage.input_tokens_details.cached_tokens == 8
    assert usage.output_tokens_details.reasoning_tokens == 0


def test_usage_in_the_finish_chunk_is_taken_too():
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    _, response = run([chunk({"content": "Hi"}), chunk({}, "stop", usage=usage)])
    assert (response.usage.input_tokens, response.usage.output_tokens) == (3, 2)


def test_missing_usage_still_reports_every_detail():
    _, response = run([chunk({"content": "Hi"}, "stop")])
    assert response.usage.total_tokens == 0
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0


def test_reasoning_then_text_gives_a_reasoning_item_then_a_message():
    events, response = run(STREAMS["vllm_reasoning_then_text"])
    assert [item.type for item in response.output] == ["reasoning", "message"]
    reasoning = response.output[0]
    assert reasoning.content[0].type == "reasoning_text"
    assert reasoning.content[0].text == "The user asks 2+2. That is 4."
    deltas = of_type(events, "response.reasoning_text.delta")
    assert "".join(event["delta"] for event in deltas) == reasoning.content[0].text
    assert response.output_text == "\n\n2 + 2 = 4."
    assert response.usage.output_tokens_details.reasoning_tokens == 9
    assert response.usage.input_tokens_details.cached_tokens == 0


@pytest.mark.parametrize("configured", ["reasoning_content", "reasoning"])
@pytest.mark.parametrize("sent", ["reasoning_content", "reasoning"])
def test_reasoning_is_read_from_either_field(configured, sent):
    chunks = copy.deepcopy(STREAMS["vllm_reasoning_then_text"])
    for item in chunks:
        for choice in item["choices"]:
            if "reasoning_content" in choice["delta"]:
                choice["delta"][sent] = choice["delta"].pop("reasoning_content")
    _, response = run(chunks, reasoning_field=configured)
    assert response.output[0].content[0].text == "The user asks 2+2. That is 4."


def test_other_choices_than_the_first_are_ignored():
    second = chunk({"content": "other"})
    second["choices"][0]["index"] = 1
    _, response = run([chunk({"content": "first"}), second, chunk({}, "stop")])
    assert response.output_text == "first"


# --- tool calls ---------------------------------------------------------------


def test_fragmented_tool_call_arguments_stream_as_argument_deltas():
    events, response = run(STREAMS["openai_tool_call_fragmented"])
    deltas = [event["delta"] for event in of_type(events, "response.function_call_arguments.delta")]
    assert deltas == ['{"', "city", '":"', "Paris", '"}']
    done = of_type(events, "response.function_call_arguments.done")
    assert [event["arguments"] for event in done] == ['{"city":"Paris"}']
    (call,) = response.output
    assert (call.type, call.name, call.arguments) == (
        "function_call",
        "get_weather",
        done[0]["arguments"],
    )
    assert call.status == "completed"
    assert response.status == "completed"


def test_call_id_is_the_backends_from_added_to_final_response():
    events, response = run(STREAMS["openai_tool_call_fragmented"])
    added = of_type(events, "response.output_item.added")[0]["item"]
    done = of_type(events, "response.output_item.done")[0]["item"]
    call_id = "call_DdmO9pD3xa9XTPNJ32zg2hcA"
    assert added["call_id"] == done["call_id"] == response.output[0].call_id == call_id
    assert added["id"] == done["id"] == response.output[0].id


@pytest.mark.parametrize("name", ["openai_parallel_tool_calls", "whole_calls_in_one_chunk"])
def test_parallel_tool_calls_become_one_item_each(name):
    events, response = run(STREAMS[name])
    calls = [(item.call_id, item.name, json.loads(item.arguments)) for item in response.output]
    assert [call[1] for call in calls] == ["get_weather", "get_time"]
    assert calls[0][2] == {"city": "Paris"}
    assert len({call[0] for call in calls}) == 2
    added = of_type(events, "response.output_item.added")
    assert [event["output_index"] for event in added] == [0, 1]


def test_text_then_tool_call_closes_the_message_before_the_call():
    events, response = run(STREAMS["text_then_tool_call"])
    assert [item.type for item in response.output] == ["message", "function_call"]
    assert response.output_text == "Let me check."
    assert response.output[1].call_id == "call_after_text"


def test_tool_call_without_backend_id_gets_one_that_stays():
    call = {"index": 0, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    events, response = run([chunk({"tool_calls": [call]}), chunk({}, "tool_calls")])
    added = of_type(events, "response.output_item.added")[0]["item"]
    assert added["call_id"].startswith("call_")
    assert response.output[0].call_id == added["call_id"]


def test_custom_tool_call_comes_back_as_custom_tool_call_with_raw_input():
    events, response = run(STREAMS["custom_apply_patch"])
    (item,) = response.output
    assert (item.type, item.name, item.call_id, item.input) == (
        "custom_tool_call",
        "apply_patch",
        "call_patch",
        PATCH,
    )
    assert of_type(events, "response.output_item.added")[0]["item"]["type"] == "custom_tool_call"
    assert of_type(events, "response.custom_tool_call_input.done")[0]["input"] == PATCH
    assert not of_type(events, "response.function_call_arguments.delta")


def test_local_shell_call_comes_back_with_an_exec_action():
    events, response = run(STREAMS["local_shell"])
    (item,) = response.output
    assert (item.type, item.call_id) == ("local_shell_call", "call_shell")
    assert item.action.type == "exec"
    assert item.action.command == ["ls", "-la"]
    assert (item.action.working_directory, item.action.timeout_ms) == ("/tmp", 5000)
    assert not of_type(events, "response.function_call_arguments.delta")


# --- endings ------------------------------------------------------------------


def test_finish_reason_length_ends_in_response_incomplete():
    events, response = run(STREAMS["length"])
    assert events[-1]["type"] == "response.incomplete"
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"
    assert response.output_text == "Once upon a"


def test_cut_stream_fails_with_a_filled_error_and_keeps_the_partial_message():
    events, response = run_failed(STREAMS["cut"])
    assert events[-1]["type"] == "response.failed"
    assert response.status == "failed"
    assert (response.error.code, response.error.message) == (BROKEN["code"], BROKEN["message"])
    assert response.output[0].status == "incomplete"
    assert response.output_text == "The answer is"


def test_cut_in_the_middle_of_a_tool_call_closes_it_incomplete():
    chunks = STREAMS["openai_tool_call_fragmented"][:3]
    events, response = run_failed(chunks)
    assert response.output[0].type == "function_call"
    assert response.output[0].status == "incomplete"
    assert response.output[0].arguments == '{"city'


def test_failure_before_any_output_has_no_items():
    events, response = run_failed([])
    assert types_of(events) == ["response.created", "response.in_progress", "response.failed"]
    assert response.output == []


def test_failure_without_code_reports_server_error():
    _, response = run_failed(STREAMS["cut"], {"message": "boom"})
    assert response.error.code == "server_error"


@pytest.mark.parametrize(
    "error",
    [
        BadGateway("The backend stream ended before the answer was complete."),
        BackendTimeout("Backend 'default' stopped sending"),
        upstream_error(429, {"error": {"message": "slow down", "code": "rate_limit"}}),
        upstream_error(500, "Internal Server Error"),
    ],
    ids=["bad-gateway", "timeout", "upstream-429", "upstream-500"],
)
def test_gateway_errors_end_in_a_failed_event_the_sdk_accepts(error):
    """The service passes `GatewayError.to_dict()`; `error.code` must be one the API defines."""
    _, response = run_failed(STREAMS["cut"], error.to_dict())
    assert response.error.message == error.message


def test_keepalive_events_fit_between_any_events():
    translator = make_translator()
    events = translator.start() + [translator.keepalive()]
    for item in STREAMS["openai_text"]:
        events += translator.feed(sse(item), []) + [translator.keepalive()]
    events += translator.finish()
    events.append(translator.terminal_event())
    assert assert_valid_event_stream(events).output_text == "Hello, world!"


def test_cancel_closes_the_open_item_and_ends_cancelled():
    translator = make_translator()
    events = feed_all(translator, STREAMS["cut"])
    events += translator.cancel()
    events.append(translator.terminal_event())
    response = assert_valid_event_stream(events)
    assert response.status == "cancelled"
    assert response.output[0].status == "incomplete"


def test_finalize_item_shapes_the_done_item_and_the_final_output_alike():
    def seal(item: dict[str, Any]) -> dict[str, Any]:
        return {**item, "encrypted_content": "sealed"} if item["type"] == "reasoning" else item

    events, response = run(STREAMS["vllm_reasoning_then_text"], finalize_item=seal)
    done = of_type(events, "response.output_item.done")[0]["item"]
    assert done["encrypted_content"] == response.output[0].encrypted_content == "sealed"


@pytest.mark.parametrize("line", ["{not json", "[1, 2]", '"text"', "null"])
def test_unreadable_backend_line_is_a_bad_gateway(line):
    translator = make_translator()
    translator.start()
    with pytest.raises(BadGateway):
        translator.feed(f"data: {line}\n\n".encode(), [])


# --- the checker catches broken streams ---------------------------------------


Change = Callable[[list[dict[str, Any]]], Any]


def renumber(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


def broken(name: str, change: Change) -> list[dict[str, Any]]:
    events = copy.deepcopy(run(STREAMS[name])[0])
    change(events)
    return events


def first(events: list[dict[str, Any]], event_type: str) -> dict[str, Any]:
    return of_type(events, event_type)[0]


# breakage -> (fixture stream, how to break its events, what the checker must say)
BREAKAGES: dict[str, tuple[str, Change, str]] = {
    "sequence-gap": ("openai_text", lambda ev: ev.pop(4), "sequence_number"),
    "delta-before-part": ("openai_text", lambda ev: ev.insert(3, ev.pop(4)), "no part"),
    "done-text-differs": (
        "openai_text",
        lambda ev: first(ev, "response.output_text.done").update(text="Hello!"),
        "concatenated deltas",
    ),
    "no-annotations": (
        "openai_text",
        lambda ev: ev[-1]["response"]["output"][0]["content"][0].pop("annotations"),
        "does not match the openai types",
    ),
    "unknown-field": ("openai_text", lambda ev: ev[4].update(content_idx=0), "do not know"),
    "call-id-changed": (
        "openai_tool_call_fragmented",
        lambda ev: first(ev, "response.output_item.done")["item"].update(call_id="call_other"),
        "call_id changed",
    ),
    "arguments-differ": (
        "openai_tool_call_fragmented",
        lambda ev: first(ev, "response.function_call_arguments.done").update(arguments="{}"),
        "done != deltas",
    ),
    "final-output-differs": (
        "openai_parallel_tool_calls",
        lambda ev: ev[-1]["response"]["output"].pop(),
        "output != items done",
    ),
    "two-items-open": (
        "openai_parallel_tool_calls",
        lambda ev: ev.remove(first(ev, "response.output_item.done")),
        "while another is open",
    ),
    "failed-without-error": (
        "openai_text",
        lambda ev: (
            ev[-1].update(type="response.failed") or ev[-1]["response"].update(status="failed")
        ),
        "failed without error",
    ),
    "wrong-terminal-status": (
        "length",
        lambda ev: ev[-1].update(type="response.completed"),
        "status incomplete",
    ),
    "terminal-not-last": (
        "openai_text",
        lambda ev: ev.insert(len(ev) - 2, ev[-1]),
        "before the end of the stream",
    ),
    "usage-without-details": (
        "openai_text",
        lambda ev: ev[-1]["response"]["usage"].pop("input_tokens_details"),
        "does not match the openai types",
    ),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_checker_refuses_a_broken_stream(breakage):
    name, change, message = BREAKAGES[breakage]
    events = broken(name, change)
    if breakage != "sequence-gap":
        events = renumber(events)
    with pytest.raises(AssertionError, match=message):
        assert_valid_event_stream(events)


def test_checker_accepts_a_lone_error_event():
    error = {
        "type": "error",
        "sequence_number": 0,
        "code": "bad_gateway",
        "message": "x",
        "param": None,
    }
    assert assert_valid_event_stream([error]) is None


def test_checker_refuses_an_error_event_after_created():
    events, _ = run(STREAMS["openai_text"])
    error = {"type": "error", "code": "bad_gateway", "message": "x", "param": None}
    with pytest.raises(AssertionError, match="error event after response.created"):
        assert_valid_event_stream(
            renumber([*events[:2], {**error, "sequence_number": 0}, *events[2:]])
        )


# --- resuming from the events a stream sent (a dead runner's stored events) ---


@pytest.mark.parametrize("name", ["vllm_reasoning_then_text", "openai_parallel_tool_calls"])
def test_a_resumed_translator_ends_the_stream_as_the_original_would(name):
    chunks = STREAMS[name]
    for stop in range(1, len(chunks)):
        original = make_translator()
        sent = feed_all(original, chunks[:stop])
        response = copy.deepcopy(original.response)
        resumed = ResponseEmitter.resume(response, copy.deepcopy(sent))
        expected = [*original.fail(BROKEN), original.terminal_event()]
        ended = [*resumed.fail(BROKEN), resumed.terminal_event()]
        assert ended == expected, f"stopped after chunk {stop}"
        assert_valid_event_stream(sent + ended)
