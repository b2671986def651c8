"""Every stored object is its owner's: another owner finds nothing, by any route or reference.

The gateway has one caller so far (passthrough: the anonymous principal),
so this test plugs in an auth mode of its own at the extension point
(`app.extensions["auth"]`), whose principals are told apart by their key:
the real store, services and routes then serve two owners. Owner B walks
every route and every reference (`previous_response_id`, `conversation`,
`item_reference`, a background stream, a cancel) to owner A's objects:
each is a 404 in the OpenAI shape, nothing reaches the backend, and A's
objects are as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import openai
import pytest

from app.auth import bearer_token
from app.auth.principal import Principal
from tests import fakebackend as fb
from tests.conftest import sdk_for
from tests.integration.helpers import MODEL, assert_openai_error, create, retrieve
from tests.integration.ops_helpers import follow, wait_for_status


class KeyedByBearer:
    """An auth mode for the test: each bearer key is its own owner (and is passed on)."""

    def principal_for(self, headers: Mapping[str, str]) -> Principal:
        key = bearer_token(headers.get("Authorization", ""))
        return Principal(key_id=key, backend_key=key)


@pytest.fixture
def two_owners(make_app, store_settings):
    app = make_app(**store_settings)
    app.extensions["auth"] = KeyedByBearer()
    return app, sdk_for(app, api_key="sk-owner-a"), sdk_for(app, api_key="sk-owner-b")


def not_found(call: Any) -> dict[str, Any]:
    with pytest.raises(openai.NotFoundError) as caught:
        call()
    return assert_openai_error(caught.value, 404)


def test_another_owner_finds_nothing_by_any_route(two_owners, backend):
    app, a, b = two_owners
    first = create(a, input="Pick a number.").body
    backend.enqueue(fb.text("Fourteen."))
    second = create(a, input="Double it.", previous_response_id=first["id"]).body
    conversation = a.conversations.create(items=[{"role": "user", "content": "I like cats."}])
    item = a.conversations.items.list(conversation.id).data[0]
    backend.enqueue(fb.hang(30.0))
    running = create(a, input="work", background=True).body
    assert backend.wait_for_requests(3, 5)  # the background run has reached the backend
    sent = len(backend.chat_requests())

    reference = [{"type": "item_reference", "id": first["output"][0]["id"]}]
    refusals = {
        "retrieve": lambda: b.responses.retrieve(first["id"]),
        "input items": lambda: b.responses.input_items.list(first["id"]),
        "delete": lambda: b.responses.delete(first["id"]),
        "cancel": lambda: b.responses.cancel(running["id"]),
        "stream again": lambda: b.responses.retrieve(running["id"], stream=True),
        "previous_response_id": lambda: b.responses.create(
            model=MODEL, input="x", previous_response_id=second["id"]
        ),
        "conversation": lambda: b.responses.create(
            model=MODEL, input="x", conversation=conversation.id
        ),
        "item_reference": lambda: b.responses.create(model=MODEL, input=reference),
        "get conversation": lambda: b.conversations.retrieve(conversation.id),
        "update conversation": lambda: b.conversations.update(conversation.id, metadata={"x": "y"}),
        "delete conversation": lambda: b.conversations.delete(conversation.id),
        "list items": lambda: b.conversations.items.list(conversation.id),
        "add items": lambda: b.conversations.items.create(
            conversation.id, items=[{"role": "user", "content": "mine now"}]
        ),
        "get item": lambda: b.conversations.items.retrieve(
            item.id, conversation_id=conversation.id
        ),
        "delete item": lambda: b.conversations.items.delete(
            item.id, conversation_id=conversation.id
        ),
    }
    for name, call in refusals.items():
        assert not_found(call)["message"], name
    assert len(backend.chat_requests()) == sent, "a refused request reached the backend"

    # A's objects are as they were.
    assert retrieve(a, first["id"]) == first and retrieve(a, second["id"]) == second
    assert [i.id for i in a.conversations.items.list(conversation.id).data] == [item.id]
    a.responses.cancel(running["id"])
    assert wait_for_status(a, running["id"], "cancelled")["status"] == "cancelled"
    assert follow(a, running["id"])[-1]["response"]["status"] == "cancelled"
    backend.enqueue(fb.text("Twenty-eight."))
    continued = create(a, input="Again.", previous_response_id=second["id"])
    assert continued.response.output_text == "Twenty-eight."
