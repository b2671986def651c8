"""POST /v1/responses with `stream: true`: event order, SDK helpers, usage, failures, storage.

Raw streams are read frame by frame and every event is validated against
the SDK's `ResponseStreamEvent` union plus the stream invariants
(`helpers.assert_valid_stream`); the SDK's own stream objects are driven
as a client would drive them.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from itertools import groupby

import openai
import pytest

from tests import fakebackend as fb
from tests.conftest import sdk_for
from tests.events import validate_event
from tests.integration.helpers import (
    MODEL,
    WEATHER_TOOL,
    assert_nothing_stored,
    assert_openai_error,
    assert_valid_stream,
    iter_events,
    last_chat,
    retrieve,
    stream,
)

APPLY_PATCH_TOOL = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files with a patch.",
}
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello\n*** End Patch\n"
TEXT_EVENTS = [
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]
REASONING_EVENTS = [
    "response.output_item.added",
    "response.content_part.added",
    "response.reasoning_text.delta",
    "response.reasoning_text.done",
    "response.content_part.done",
    "response.output_item.done",
]
FUNCTION_CALL_EVENTS = [
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
]
START = ["response.created", "response.in_progress"]


def collapsed(types: list[str]) -> list[str]:
    """Event types with runs of the same type (deltas) folded into one."""
    return [kind for kind, _ in groupby(types)]


def deltas(streamed, event_type: str) -> str:
    return "".join(event["delta"] for event in streamed.of_type(event_type))


def test_text_stream_has_the_full_event_order(sdk, backend):
    backend.enqueue(fb.text("Hello streaming world", chunk_size=4))
    streamed = stream(sdk, input="Hi")
    assert collapsed(streamed.types) == START + TEXT_EVENTS + ["response.completed"]
    assert len(streamed.of_type("response.output_text.delta")) == 6
    assert deltas(streamed, "response.output_text.delta") == "Hello streaming world"
    [message] = streamed.response.output
    for event in streamed.of_type("response.output_text.delta"):
        assert (event["item_id"], event["output_index"], event["content_index"]) == (
            message.id,
            0,
            0,
        )
    assert streamed.response.output_text == "Hello streaming world"
    assert streamed.events[-1]["response"]["output"][0]["content"][0]["annotations"] == []


def test_reasoning_then_text_stream(sdk, backend):
    backend.enqueue(fb.text("Forty-two.", reasoning="Multiply six by seven."))
    streamed = stream(sdk, input="The answer?")
    assert collapsed(streamed.types) == (
        START + REASONING_EVENTS + TEXT_EVENTS + ["response.completed"]
    )
    assert deltas(streamed, "response.reasoning_text.delta") == "Multiply six by seven."
    [done] = streamed.of_type("response.reasoning_text.done")
    assert done["text"] == "Multiply six by seven." and done["output_index"] == 0
    reasoning, message = streamed.events[-1]["response"]["output"]
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Multiply six by seven."}]
    assert message["content"][0]["text"] == "Forty-two."


def test_tool_call_stream_has_argument_events(sdk, backend):
    arguments = json.dumps({"city": "Paris"})
    backend.enqueue(
        fb.tool_calls([{"id": "call_paris", "name": "get_weather", "arguments": arguments}])
    )
    streamed = stream(sdk, input="Weather in Paris?", tools=[WEATHER_TOOL])
    assert collapsed(streamed.types) == START + FUNCTION_CALL_EVENTS + ["response.completed"]
    [added] = streamed.of_type("response.output_item.added")
    [args_done] = streamed.of_type("response.function_call_arguments.done")
    [item_done] = streamed.of_type("response.output_item.done")
    assert added["item"]["type"] == "function_call"
    assert added["item"]["name"] == "get_weather"
    assert args_done["arguments"] == arguments
    assert deltas(streamed, "response.function_call_arguments.delta") == arguments
    [call] = streamed.events[-1]["response"]["output"]
    for item in (added["item"], item_done["item"], call):
        assert item["call_id"] == "call_paris"
    assert call["arguments"] == arguments and call["status"] == "completed"


def test_reasoning_text_and_parallel_calls_stream_one_item_after_another(sdk, backend):
    calls = [
        {"id": "call_a", "name": "get_weather", "arguments": {"city": "Paris"}},
        {"id": "call_b", "name": "get_weather", "arguments": {"city": "Rome"}},
    ]
    backend.enqueue(fb.tool_calls(calls, content="Checking both.", reasoning="Two cities."))
    streamed = stream(sdk, input="Paris and Rome?", tools=[WEATHER_TOOL])
    assert collapsed(streamed.types) == (
        START
        + REASONING_EVENTS
        + TEXT_EVENTS
        + FUNCTION_CALL_EVENTS
        + FUNCTION_CALL_EVENTS
        + ["response.completed"]
    )
    output = streamed.events[-1]["response"]["output"]
    assert [item["type"] for item in output] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert [item["call_id"] for item in output[2:]] == ["call_a", "call_b"]
    assert [json.loads(item["arguments"])["city"] for item in output[2:]] == ["Paris", "Rome"]


def test_custom_tool_call_stream(sdk, backend):
    backend.enqueue(fb.tool_calls([{"name": "apply_patch", "arguments": {"input": PATCH}}]))
    streamed = stream(sdk, input="Create hello.txt", tools=[APPLY_PATCH_TOOL])
    assert collapsed(streamed.types) == START + [
        "response.output_item.added",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert deltas(streamed, "response.custom_tool_call_input.delta") == PATCH
    [call] = streamed.events[-1]["response"]["output"]
    assert call["type"] == "custom_tool_call"
    assert (call["name"], call["input"]) == ("apply_patch", PATCH)


def test_sdk_create_stream_yields_typed_events(sdk, backend):
    backend.enqueue(fb.text("Typed events"))
    with sdk.responses.create(model=MODEL, input="Hi", stream=True) as events:
        received = list(events)
    for event in received:
        validate_event(event.to_dict())
    assert received[0].type == "response.created"
    assert received[-1].type == "response.completed"
    assert received[-1].response.output_text == "Typed events"


def test_sdk_stream_helper_gives_text_deltas_and_final_response(sdk, backend):
    backend.enqueue(fb.text("Helper says hi", chunk_size=3))
    with sdk.responses.stream(model=MODEL, input="Hi") as helper:
        text = "".join(e.delta for e in helper if e.type == "response.output_text.delta")
        final = helper.get_final_response()
    assert text == "Helper says hi"
    assert final.status == "completed"
    assert final.output_text == "Helper says hi"


def test_sdk_stream_helper_final_response_has_tool_call(sdk, backend):
    backend.enqueue(fb.tool_calls([{"name": "get_weather", "arguments": {"city": "Oslo"}}]))
    with sdk.responses.stream(model=MODEL, input="Oslo?", tools=[WEATHER_TOOL]) as helper:
        final = helper.get_final_response()
    [call] = final.output
    assert call.type == "function_call"
    assert json.loads(call.arguments) == {"city": "Oslo"}


def test_usage_is_in_the_terminal_event_and_asked_of_the_backend(sdk, backend):
    usage = {
        "prompt_tokens": 21,
        "completion_tokens": 3,
        "total_tokens": 24,
        "prompt_tokens_details": {"cached_tokens": 16},
    }
    backend.enqueue(fb.text("three words here", usage=usage))
    streamed = stream(sdk, input="Hi")
    chat = last_chat(backend)
    assert chat["stream"] is True
    assert chat["stream_options"]["include_usage"] is True
    terminal_usage = streamed.events[-1]["response"]["usage"]
    assert (terminal_usage["input_tokens"], terminal_usage["output_tokens"]) == (21, 3)
    assert terminal_usage["total_tokens"] == 24
    assert terminal_usage["input_tokens_details"]["cached_tokens"] == 16
    assert terminal_usage["output_tokens_details"]["reasoning_tokens"] == 0


def test_cut_backend_stream_fails_and_is_stored_as_failed(sdk, backend):
    backend.enqueue(fb.cut("a partial answer that breaks", after_chunks=3))
    streamed = stream(sdk, input="Hi")
    assert streamed.types[-1] == "response.failed"
    failed = streamed.events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"]["message"] and failed["error"]["code"]
    [partial] = failed["output"]
    assert partial["status"] == "incomplete"
    stored = retrieve(sdk, failed["id"])
    assert stored["status"] == "failed"
    assert stored["error"] == failed["error"]


@pytest.mark.parametrize(
    "reply",
    [
        fb.text("All good."),
        fb.text("Thought out.", reasoning="Thinking first."),
        fb.tool_calls([{"name": "get_weather", "arguments": {"city": "Rome"}}]),
        fb.length("Cut at the"),
    ],
    ids=["text", "reasoning", "tool-call", "incomplete"],
)
def test_stored_response_equals_the_terminal_event_response(sdk, backend, reply):
    backend.enqueue(reply)
    streamed = stream(sdk, input="Hi", tools=[WEATHER_TOOL])
    terminal = streamed.events[-1]["response"]
    assert retrieve(sdk, terminal["id"]) == terminal


def test_response_is_retrievable_as_soon_as_the_terminal_event_arrives(sdk, backend):
    backend.enqueue(fb.text("Stored before the end."))
    with sdk.responses.create(model=MODEL, input="Hi", stream=True) as events:
        for event in events:
            if event.type == "response.completed":
                stored = retrieve(sdk, event.response.id)
                break
    assert stored["status"] == "completed"
    assert stored["output"][0]["content"][0]["text"] == "Stored before the end."


def test_store_false_stream_is_not_retrievable(app, sdk, backend):
    streamed = stream(sdk, input="Hi", store=False)
    assert streamed.response.status == "completed" and streamed.response.store is False
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.responses.retrieve(streamed.response.id)
    assert_openai_error(caught.value, 404)
    assert_nothing_stored(app)


# --- the backend connection -----------------------------------------------------


def test_a_finished_stream_gives_its_backend_connection_back(sdk, backend):
    for answer in ("First.", "Second.", "Third."):
        backend.enqueue(replace(fb.text(answer), keep_alive=True))
    answers = [stream(sdk, input="Hi").response.output_text for _ in range(3)]
    assert answers == ["First.", "Second.", "Third."]
    ports = {request.client_port for request in backend.requests}
    assert len(ports) == 1, "each stream opened a new backend connection"


def test_a_stream_cut_by_the_backend_does_not_poison_the_next_call(sdk, backend):
    backend.enqueue(replace(fb.cut("a partial answer", after_chunks=2), keep_alive=True))
    backend.enqueue(replace(fb.text("Fresh."), keep_alive=True))
    assert stream(sdk, input="Hi").types[-1] == "response.failed"
    assert stream(sdk, input="Again").response.output_text == "Fresh."


def test_streams_are_asked_for_without_content_encoding(sdk, backend):
    stream(sdk, input="Hi")
    assert backend.requests[-1].headers["accept-encoding"] == "identity"


def test_a_compressed_event_stream_is_a_502_and_nothing_is_stored(app, sdk, backend):
    body = gzip.compress(b'data: {"choices": []}\n\ndata: [DONE]\n\n')
    headers = {"Content-Encoding": "gzip"}
    backend.enqueue(fb.raw(200, body, "text/event-stream", headers))
    with pytest.raises(openai.APIStatusError) as caught:
        stream(sdk, input="Hi")
    error = assert_openai_error(caught.value, 502)
    assert "Content-Encoding 'gzip'" in error["message"]
    assert_nothing_stored(app)


def test_a_tls_backend_streams_and_keeps_its_connection(make_app, https_backend):
    server, cert = https_backend
    # The backend's CA bundle is the test's own self-signed certificate.
    app = make_app(backends=[{"name": "tls", "base_url": server.base_url, "ca_bundle": str(cert)}])
    sdk = sdk_for(app)
    for answer in ("First.", "Second."):
        server.enqueue(replace(fb.text(answer), keep_alive=True))
    assert [stream(sdk, input="Hi").response.output_text for _ in range(2)] == ["First.", "Second."]
    assert len({request.client_port for request in server.requests}) == 1


def test_an_error_the_backend_sends_mid_stream_fails_the_response_with_its_words(sdk, backend):
    error = {
        "error": {
            "message": 'Traceback (most recent call last):\n  File "/srv/x.py"'
            ", line 1\nRuntimeError: the engine died",
            "type": "server_error",
        }
    }
    body = _sse_body(_delta_chunk("Half an"), json.dumps(error))
    backend.enqueue(fb.raw(200, body, "text/event-stream"))
    failed = stream(sdk, input="Hi").response
    assert failed.status == "failed" and failed.error.code == "server_error"
    assert failed.error.message.endswith("stopped with an error: RuntimeError: the engine died")
    assert failed.output[0].status == "incomplete" and failed.output_text == "Half an"


def _sse_body(*payloads: str) -> bytes:
    return b"".join(f"data: {payload}\n\n".encode() for payload in payloads)


def _delta_chunk(content: str, finish_reason: str | None = None) -> str:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": finish_reason}
    return json.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [choice]})


def _writes_of(client, backend, backend_body: bytes) -> list[list[dict]]:
    """The events of a stream grouped by the write (chunk of the response) they came in."""
    backend.enqueue(fb.raw(200, backend_body, "text/event-stream"))
    response = client.post(
        "/v1/responses", json={"model": MODEL, "input": "Hi", "stream": True}, buffered=False
    )
    assert response.status_code == 200
    writes = [list(iter_events(chunk.decode().splitlines())) for chunk in response.response]
    response.close()
    return writes


def test_what_one_backend_read_brings_goes_out_in_one_write(client, backend):
    # The whole body is sent at once (sized), so the gateway reads it in one go.
    body = _sse_body(*[_delta_chunk(word) for word in ["one", "two", "three"]])
    body += _sse_body(_delta_chunk("", "stop"), "[DONE]")
    writes = _writes_of(client, backend, body)
    assert [[event["type"] for event in write] for write in writes] == [
        ["response.created", "response.in_progress"],
        TEXT_EVENTS[:2] + ["response.output_text.delta"] * 3,
        TEXT_EVENTS[3:] + ["response.completed"],
    ]
    assert_valid_stream([event for write in writes for event in write])


def test_a_read_that_breaks_midway_still_sends_what_came_before_the_break(app, client, backend):
    body = _sse_body(_delta_chunk("Hello"), _delta_chunk(" there"), "{not json")
    events = [event for write in _writes_of(client, backend, body) for event in write]
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        *TEXT_EVENTS[:2],
        "response.output_text.delta",
        "response.output_text.delta",
        *TEXT_EVENTS[3:],
        "response.failed",
    ]
    response = assert_valid_stream(events)
    assert response.output[0].content[0].text == "Hello there"
    assert retrieve(sdk_for(app), response.id)["status"] == "failed"


def test_a_long_answer_of_many_small_deltas_comes_back_whole(sdk, backend):
    words = [f"w{number} " for number in range(300)]  # more deltas than are kept apart
    backend.enqueue(fb.text("".join(words), chunk_size=3))
    streamed = stream(sdk, input="Count.")
    deltas = [event["delta"] for event in streamed.of_type("response.output_text.delta")]
    assert len(deltas) > 300
    (done,) = streamed.of_type("response.output_text.done")
    assert done["text"] == "".join(deltas) == "".join(words)
    assert retrieve(sdk, streamed.response.id)["output"][0]["content"][0]["text"] == done["text"]
