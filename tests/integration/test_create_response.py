"""POST /v1/responses (JSON) through the openai SDK: input shapes, parameters, echo, output.

Each test checks both sides: the Chat request the fake backend received
and the Responses body the client got, validated against the SDK's types.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import fakebackend as fb
from tests.conftest import TEST_KEY, sdk_for
from tests.integration.helpers import (
    DEFAULT_TEXT,
    MODEL,
    WEATHER_TOOL,
    assert_chat_body_clean,
    create,
    last_chat,
    retrieve,
    store_bytes,
    stream,
)

IMAGE_URL = "http://127.0.0.1/cat.png"
DATA_URL = "data:image/png;base64,iVBORw0KGgo="
BACKEND_KEY = "sk-backend-own-key-9876543210"
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
    "additionalProperties": False,
}


def backend_with(backend: fb.FakeBackend, **settings: Any) -> list[dict[str, Any]]:
    """The `backends` override: the fake backend with extra settings."""
    return [{"base_url": backend.base_url, **settings}]


def test_string_input_is_one_user_message(sdk, backend):
    created = create(sdk, input="Hello")
    chat = last_chat(backend)
    assert chat["model"] == MODEL
    assert chat["messages"] == [{"role": "user", "content": "Hello"}]
    assert_chat_body_clean(chat)
    response = created.response
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == MODEL
    assert response.output_text == DEFAULT_TEXT
    [message] = created.body["output"]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [
        {"type": "output_text", "text": DEFAULT_TEXT, "annotations": [], "logprobs": []}
    ]


def test_list_input_keeps_roles_parts_and_images(sdk, backend):
    create(
        sdk,
        input=[
            {"role": "developer", "content": "Be precise."},
            {"role": "system", "content": [{"type": "input_text", "text": "Speak English."}]},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is in these pictures?"},
                    {"type": "input_image", "image_url": IMAGE_URL, "detail": "low"},
                    {"type": "input_image", "image_url": DATA_URL, "detail": "auto"},
                ],
            },
            {"role": "assistant", "content": [{"type": "output_text", "text": "Two cats."}]},
            {"type": "message", "role": "user", "content": "Which is bigger?"},
        ],
    )
    assert last_chat(backend)["messages"] == [
        {"role": "system", "content": "Be precise."},
        {"role": "system", "content": "Speak English."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these pictures?"},
                {"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": DATA_URL, "detail": "auto"}},
            ],
        },
        {"role": "assistant", "content": "Two cats."},
        {"role": "user", "content": "Which is bigger?"},
    ]


def test_instructions_come_first_and_are_not_carried_into_the_next_turn(sdk, backend):
    first = create(sdk, instructions="Answer in French.", input="Hi")
    assert last_chat(backend)["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert first.response.instructions == "Answer in French."

    second = create(sdk, previous_response_id=first.response.id, input="Again")
    assert last_chat(backend)["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": DEFAULT_TEXT},
        {"role": "user", "content": "Again"},
    ]
    assert second.response.instructions is None

    create(sdk, previous_response_id=second.response.id, instructions="Be brief.", input="More")
    messages = last_chat(backend)["messages"]
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert [m for m in messages if m["role"] == "system"] == [messages[0]]


def test_sampling_parameters_are_forwarded(sdk, backend):
    create(sdk, input="Hi", temperature=0.3, top_p=0.9, max_output_tokens=55, user="user-1")
    chat = last_chat(backend)
    assert (chat["temperature"], chat["top_p"], chat["user"]) == (0.3, 0.9, "user-1")
    assert chat["max_tokens"] == 55
    assert "max_completion_tokens" not in chat


def test_max_output_tokens_becomes_max_completion_tokens_when_configured(make_app, backend):
    app = make_app(backends=backend_with(backend, max_tokens_field="max_completion_tokens"))
    create(sdk_for(app), input="Hi", max_output_tokens=77)
    chat = last_chat(backend)
    assert chat["max_completion_tokens"] == 77
    assert "max_tokens" not in chat


def test_metadata_is_echoed_and_stored(sdk):
    metadata = {"ticket": "T-1", "team": "core"}
    created = create(sdk, input="Hi", metadata=metadata)
    assert created.response.metadata == metadata
    assert retrieve(sdk, created.response.id)["metadata"] == metadata


ECHOED = {
    "instructions": "Be kind.",
    "temperature": 0.5,
    "top_p": 0.8,
    "max_output_tokens": 200,
    "max_tool_calls": 3,
    "top_logprobs": 2,
    "metadata": {"k": "v"},
    "parallel_tool_calls": False,
    "tool_choice": "auto",
    "tools": [WEATHER_TOOL],
    "truncation": "auto",
    "user": "user-7",
    "prompt_cache_key": "cache-key-1",
    "prompt_cache_retention": "24h",
    "safety_identifier": "safety-1",
    "service_tier": "default",
    "store": True,
}


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_every_request_field_is_accepted_and_echoed(sdk, backend, streamed):
    extra = {"stream_options": {"include_obfuscation": False}} if streamed else {}
    params = {
        **ECHOED,
        "input": "Hi",
        "include": ["message.output_text.logprobs"],
        "text": {"format": {"type": "text"}, "verbosity": "low"},
        "reasoning": {"effort": "low", "summary": "auto"},
        **extra,
    }
    body = stream(sdk, **params).events[-1]["response"] if streamed else create(sdk, **params).body
    assert {name: body[name] for name in ECHOED} == ECHOED
    assert body["text"] == {"format": {"type": "text"}, "verbosity": "low"}
    assert (body["reasoning"]["effort"], body["reasoning"]["summary"]) == ("low", "auto")
    chat = last_chat(backend)
    assert_chat_body_clean(chat)
    assert (chat["logprobs"], chat["top_logprobs"]) == (True, 2)
    assert chat["reasoning_effort"] == "low"
    assert chat["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    ("text_format", "response_format"),
    [
        ({"type": "json_object"}, {"type": "json_object"}),
        (
            {"type": "json_schema", "name": "person", "schema": PERSON_SCHEMA, "strict": True},
            {
                "type": "json_schema",
                "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
            },
        ),
    ],
    ids=["json_object", "json_schema"],
)
def test_text_format_becomes_response_format(sdk, backend, text_format, response_format):
    backend.enqueue(fb.text('{"name": "Ada"}'))
    created = create(sdk, input="Name someone, as JSON.", text={"format": text_format})
    assert last_chat(backend)["response_format"] == response_format
    assert created.body["text"]["format"] == text_format
    assert created.response.output_text == '{"name": "Ada"}'


def test_plain_text_format_sends_no_response_format(sdk, backend):
    create(sdk, input="Hi", text={"format": {"type": "text"}})
    assert "response_format" not in last_chat(backend)


def test_reasoning_effort_becomes_reasoning_effort(sdk, backend):
    created = create(sdk, input="Think.", reasoning={"effort": "high"})
    assert last_chat(backend)["reasoning_effort"] == "high"
    assert created.response.reasoning.effort == "high"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_backend_reasoning_becomes_a_reasoning_item(sdk, backend, field):
    backend.enqueue(fb.text("42", reasoning="Six times seven.", reasoning_field=field))
    created = create(sdk, input="The answer?")
    reasoning, message = created.body["output"]
    assert reasoning["type"] == "reasoning"
    assert reasoning["id"].startswith("rs_")
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Six times seven."}]
    assert reasoning["summary"] == []
    assert message["type"] == "message"
    assert created.response.output_text == "42"
    assert created.response.usage.output_tokens_details.reasoning_tokens == 3


def test_length_finish_makes_the_response_incomplete(sdk, backend):
    backend.enqueue(fb.length("The story begins"))
    created = create(sdk, input="Tell a story.", max_output_tokens=3)
    assert created.response.status == "incomplete"
    assert created.body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert created.body["output"][0]["status"] == "incomplete"
    assert created.response.output_text == "The story begins"


@pytest.mark.parametrize(
    ("usage", "cached", "reasoning"),
    [
        ({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}, 0, 0),
        (
            {
                "prompt_tokens": 50,
                "completion_tokens": 9,
                "total_tokens": 59,
                "prompt_tokens_details": {"cached_tokens": 32},
                "completion_tokens_details": {"reasoning_tokens": 4},
            },
            32,
            4,
        ),
    ],
    ids=["no-details", "details"],
)
def test_usage_details_are_always_present(sdk, backend, usage, cached, reasoning):
    backend.enqueue(fb.text("ok", usage=usage))
    body = create(sdk, input="Hi").body
    assert body["usage"]["input_tokens"] == usage["prompt_tokens"]
    assert body["usage"]["output_tokens"] == usage["completion_tokens"]
    assert body["usage"]["total_tokens"] == usage["total_tokens"]
    assert body["usage"]["input_tokens_details"]["cached_tokens"] == cached
    assert body["usage"]["output_tokens_details"] == {"reasoning_tokens": reasoning}


def test_client_bearer_is_forwarded_to_the_backend(sdk, backend):
    create(sdk, input="Hi")
    assert backend.requests[-1].headers["authorization"] == f"Bearer {TEST_KEY}"


def test_backend_key_replaces_the_client_key(make_app, backend):
    app = make_app(backends=backend_with(backend, api_key=BACKEND_KEY))
    create(sdk_for(app), input="Hi")
    headers = backend.requests[-1].headers
    assert headers["authorization"] == f"Bearer {BACKEND_KEY}"
    assert all(TEST_KEY not in value for value in headers.values())


def test_a_cookie_one_call_brought_back_rides_on_no_later_call(sdk, backend):
    # The backend session is shared by every client's calls.
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
    }
    cookie = {"Set-Cookie": "session=from-another-client; Path=/"}
    backend.enqueue(fb.raw(200, json.dumps(completion).encode(), headers=cookie))
    assert create(sdk, input="Hi").response.output_text == "ok"
    create(sdk, input="Hi again")
    assert "cookie" not in backend.requests[-1].headers


def test_client_key_never_reaches_the_store(app, sdk, backend):
    first = create(sdk, input="Remember this.", metadata={"note": "keys stay out"})
    stream(sdk, input="And this.", previous_response_id=first.response.id)
    stored = store_bytes(app)
    assert first.response.id.encode() in stored, "the store file was not written"
    assert TEST_KEY.encode() not in stored
    assert TEST_KEY[6:-4].encode() not in stored
