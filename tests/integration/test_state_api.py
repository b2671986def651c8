"""Stored state through the SDK, on SQLite and PostgreSQL: responses, input items,
conversations; and bad input refused with nothing sent upstream and nothing stored.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.conversations import Conversation, ConversationDeletedResource
from openai.types.conversations.conversation_item import ConversationItem
from openai.types.conversations.conversation_item_list import ConversationItemList
from openai.types.responses import Response, ResponseItem
from openai.types.responses.response_item_list import ResponseItemList
from pydantic import TypeAdapter

from app.store.models import StoredConversation, StoredItem, StoredResponse, db
from tests.conftest import sdk_for
from tests.fakebackend import text
from tests.integration.helpers import assert_openai_error

MODEL = "fake-model"
ITEM = TypeAdapter(ConversationItem)


@pytest.fixture
def store_app(make_app, store_settings):
    return make_app(**store_settings)


@pytest.fixture
def client(store_app) -> openai.OpenAI:
    return sdk_for(store_app)


def row_counts() -> tuple[int, int, int]:
    with db.connection_context():
        return tuple(
            model.select().count() for model in (StoredResponse, StoredItem, StoredConversation)
        )


def refused(backend, call, status: int) -> dict[str, Any]:
    """`call` fails with `status` in the OpenAI shape; nothing sent, nothing stored."""
    sent, rows = len(backend.chat_requests()), row_counts()
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    error = assert_openai_error(caught.value, status)
    assert len(backend.chat_requests()) == sent, "a refused request reached the backend"
    assert row_counts() == rows, "a refused request left rows behind"
    return error


def test_retrieve_returns_what_create_returned(client):
    created = client.responses.create(model=MODEL, input="hi", metadata={"k": "v"})
    assert client.responses.retrieve(created.id).model_dump() == created.model_dump()


def test_delete_then_retrieve_is_404(client, backend):
    created = client.responses.create(model=MODEL, input="hi")
    client.responses.delete(created.id)
    refused(backend, lambda: client.responses.retrieve(created.id), 404)
    refused(backend, lambda: client.responses.delete(created.id), 404)


def test_input_items_are_paged_with_cursors(client):
    sent = [{"role": "user", "content": f"part {n}"} for n in range(5)]
    created = client.responses.create(model=MODEL, input=sent)
    everything = client.responses.input_items.list(created.id, order="asc", limit=100)
    ResponseItemList.model_validate(everything.model_dump())
    ids = [item.id for item in everything.data]
    assert len(ids) == 5 and all(item_id.startswith("msg_") for item_id in ids)
    assert [item.content[0].text for item in everything.data] == [f"part {n}" for n in range(5)]
    page = client.responses.input_items.with_raw_response.list(created.id, order="asc", limit=2)
    body = page.http_response.json()
    assert [item["id"] for item in body["data"]] == ids[:2]
    assert (body["first_id"], body["last_id"], body["has_more"]) == (ids[0], ids[1], True)
    after = client.responses.input_items.list(created.id, order="asc", after=ids[1], limit=2)
    assert [item.id for item in after.data] == ids[2:4]
    before = client.responses.input_items.list(
        created.id, order="desc", limit=10, extra_query={"before": ids[2]}
    )
    assert [item.id for item in before.data] == ids[3:][::-1]
    newest = client.responses.input_items.list(created.id, limit=1)  # default order: desc
    assert [item.id for item in newest.data] == [ids[-1]]


def test_a_chain_replays_every_turn_in_order(client, backend):
    previous = None
    for turn in range(5):
        backend.enqueue(text(f"answer {turn}"))
        previous = client.responses.create(
            model=MODEL, input=f"question {turn}", previous_response_id=previous
        ).id
    messages = backend.chat_requests()[-1]["messages"]
    expected = []
    for turn in range(5):
        expected.append({"role": "user", "content": f"question {turn}"})
        if turn < 4:
            expected.append({"role": "assistant", "content": f"answer {turn}"})
    assert messages == expected


def test_store_false_cannot_be_retrieved_or_continued(client, backend):
    created = client.responses.create(model=MODEL, input="hi", store=False)
    assert created.store is False
    refused(backend, lambda: client.responses.retrieve(created.id), 404)
    error = refused(
        backend,
        lambda: client.responses.create(model=MODEL, input="more", previous_response_id=created.id),
        404,
    )
    assert (error["code"], error["param"]) == (
        "previous_response_not_found",
        "previous_response_id",
    )


def test_cancel_is_only_for_background_responses(client, backend):
    created = client.responses.create(model=MODEL, input="hi")
    refused(backend, lambda: client.responses.cancel(created.id), 400)
    refused(backend, lambda: client.responses.cancel("resp_unknown"), 404)


def test_item_reference_is_resolved_from_the_store(client, backend):
    first = client.responses.create(model=MODEL, input="remember this")
    answer_id = first.output[0].id
    client.responses.create(
        model=MODEL,
        input=[{"type": "item_reference", "id": answer_id}, {"role": "user", "content": "and?"}],
    )
    assert backend.chat_requests()[-1]["messages"] == [
        {"role": "assistant", "content": "Hello from the fake backend."},
        {"role": "user", "content": "and?"},
    ]
    refused(
        backend,
        lambda: client.responses.create(
            model=MODEL, input=[{"type": "item_reference", "id": "msg_nope"}]
        ),
        404,
    )


def test_conversations_api_end_to_end(client, backend):
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "first"}], metadata={"topic": "demo"}
    )
    Conversation.model_validate(conversation.model_dump())
    assert client.conversations.retrieve(conversation.id).metadata == {"topic": "demo"}
    updated = client.conversations.update(conversation.id, metadata={"topic": "changed"})
    assert updated.metadata == {"topic": "changed"}

    added = client.conversations.items.create(
        conversation.id, items=[{"type": "message", "role": "user", "content": "second"}]
    )
    ConversationItemList.model_validate(added.model_dump())
    listed = client.conversations.items.list(conversation.id, order="asc")
    texts = [item.content[0].text for item in listed.data]
    assert texts == ["first", "second"]
    for item in listed.data:
        ITEM.validate_python(item.model_dump())
    one = client.conversations.items.retrieve(listed.data[0].id, conversation_id=conversation.id)
    assert one.id == listed.data[0].id
    client.conversations.items.delete(listed.data[0].id, conversation_id=conversation.id)
    assert [item.id for item in client.conversations.items.list(conversation.id).data] == [
        listed.data[1].id
    ]

    deleted = client.conversations.delete(conversation.id)
    ConversationDeletedResource.model_validate(deleted.model_dump())
    refused(backend, lambda: client.conversations.retrieve(conversation.id), 404)


def test_responses_in_a_conversation_append_and_replay(client, backend):
    conversation = client.conversations.create()
    backend.enqueue(text("one"), text("two"))
    client.responses.create(model=MODEL, input="a", conversation=conversation.id)
    second = client.responses.create(model=MODEL, input="b", conversation={"id": conversation.id})
    assert second.conversation.id == conversation.id
    assert backend.chat_requests()[-1]["messages"] == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "b"},
    ]
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [item.role for item in items] == ["user", "assistant", "user", "assistant"]


def test_conversation_and_previous_response_together_are_refused(client, backend):
    conversation = client.conversations.create()
    first = client.responses.create(model=MODEL, input="hi")
    error = refused(
        backend,
        lambda: client.responses.create(
            model=MODEL, input="x", conversation=conversation.id, previous_response_id=first.id
        ),
        400,
    )
    assert error["code"] == "mutually_exclusive_parameters"
    refused(
        backend,
        lambda: client.responses.create(model=MODEL, input="x", conversation="conv_nope"),
        404,
    )


BAD_BODIES = [
    ({"input": "hi"}, 400, "missing_required_parameter"),
    ({"model": MODEL, "input": 5}, 400, "invalid_type"),
    ({"model": MODEL, "input": "hi", "temperature": "1"}, 400, "invalid_type"),
    ({"model": MODEL, "input": "hi", "stream": "yes"}, 400, "invalid_type"),
    ({"model": MODEL, "input": "hi", "frobnicate": 1}, 400, "unknown_parameter"),
    ({"model": MODEL, "input": [{"type": "telepathy"}]}, 400, "invalid_value"),
    (
        {"model": MODEL, "input": [{"role": "user", "content": [{"type": "smell"}]}]},
        400,
        "invalid_value",
    ),
    (
        {"model": MODEL, "input": "hi", "metadata": {f"k{n}": "v" for n in range(17)}},
        400,
        "object_above_max_properties",
    ),
    ({"model": MODEL, "input": "hi", "metadata": {"k" * 65: "v"}}, 400, "string_above_max_length"),
    ({"model": MODEL, "input": "hi", "metadata": {"k": "v" * 513}}, 400, "string_above_max_length"),
    (
        {"model": MODEL, "input": "hi", "tool_choice": {"type": "function", "name": "nope"}},
        400,
        "invalid_value",
    ),
    ({"model": "two words", "input": "hi"}, 400, "invalid_value"),
    (
        {"model": MODEL, "input": "hi", "previous_response_id": "resp_nope"},
        404,
        "previous_response_not_found",
    ),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_BODIES)
def test_bad_bodies_are_refused_before_anything_happens(store_app, backend, body, status, code):
    http = store_app.test_client()
    sent, rows = len(backend.chat_requests()), row_counts()
    reply = http.post("/v1/responses", json=body)
    assert reply.status_code == status
    assert set(reply.json) == {"error"}
    assert reply.json["error"]["code"] == code
    assert len(backend.chat_requests()) == sent and row_counts() == rows


@pytest.mark.parametrize(
    ("method", "path", "data", "status"),
    [
        ("post", "/v1/responses", b"{not json", 400),
        ("post", "/v1/responses", b"[1, 2]", 400),
        ("get", "/v1/nowhere", None, 404),
        ("put", "/v1/responses", b"{}", 405),
        ("post", "/v1/conversations", b'{"items": "nope"}', 400),
        (
            "post",
            "/v1/conversations",
            b'{"items": ['
            + b'{"role": "user", "content": "x"},' * 20
            + b'{"role": "user", "content": "x"}]}',
            400,
        ),
        ("post", "/v1/conversations/conv_nope/items", b'{"items": []}', 404),
    ],
)
def test_malformed_requests_get_openai_errors(store_app, backend, method, path, data, status):
    http = store_app.test_client()
    rows = row_counts()
    reply = getattr(http, method)(path, data=data, content_type="application/json")
    assert reply.status_code == status
    assert {"message", "type", "param", "code"} <= set(reply.json["error"])
    assert not backend.chat_requests() and row_counts() == rows


def test_oversized_body_is_413(make_app, backend):
    http = make_app(max_body_bytes=1024).test_client()
    reply = http.post("/v1/responses", json={"model": MODEL, "input": "x" * 2048})
    assert reply.status_code == 413
    assert reply.json["error"]["code"] == "request_too_large"
    assert not backend.chat_requests()


def test_stored_responses_validate_as_api_objects(client):
    created = client.responses.create(model=MODEL, input="hi")
    Response.model_validate(client.responses.retrieve(created.id).model_dump())
    for item in client.responses.input_items.list(created.id).data:
        TypeAdapter(ResponseItem).validate_python(item.model_dump())
