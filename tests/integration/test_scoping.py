"""Every stored object is its owner's: another owner finds nothing, by any route or reference.

Owners are told apart as each auth mode does: in passthrough by the
client's own key (an HMAC of it), in keys mode by the virtual key, with
another tenant or another project of the same tenant. Owner B walks every
route and every reference (`previous_response_id`, `conversation`,
`item_reference`, a background stream, a cancel, a file) to owner A's objects:
each is a 404 in the OpenAI shape, nothing reaches the backend, and A's
objects are as they were. Keys of one project share what they store
(unless `store_sharing` is `key`); in passthrough, what a caller without
a key stored (as everything before owners) stays readable with a key.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests import fakebackend as fb
from tests.conftest import sdk_for
from tests.integration.helpers import MODEL, assert_openai_error, create, retrieve
from tests.integration.ops_helpers import follow, wait_for_status
from tests.integration.tenancy import KEYS_MODE, AdminClient, key_sdk

OWNERS_APART = ["passthrough keys", "other tenant", "other project"]


def keyed_pair(make_app, settings: dict[str, Any], first: dict, second: dict):
    app = make_app(**KEYS_MODE, **settings)
    admin = AdminClient(app)
    for tenant in {first.get("tenant_id"), second.get("tenant_id")} - {None}:
        admin.tenant(tenant)
    return app, key_sdk(app, admin.key("a", **first)), key_sdk(app, admin.key("b", **second))


@pytest.fixture(params=OWNERS_APART)
def two_owners(request, make_app, store_settings):
    if request.param == "passthrough keys":
        app = make_app(**store_settings)
        return app, sdk_for(app, api_key="sk-owner-a"), sdk_for(app, api_key="sk-owner-b")
    if request.param == "other tenant":
        return keyed_pair(make_app, store_settings, {"tenant_id": "t-a"}, {"tenant_id": "t-b"})
    return keyed_pair(make_app, store_settings, {"project_id": "p1"}, {"project_id": "p2"})


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
    upload = a.files.create(file=("mine.txt", b"A's own bytes"), purpose="user_data")
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
        "input_file": lambda: b.responses.create(
            model=MODEL,
            input=[{"role": "user", "content": [{"type": "input_file", "file_id": upload.id}]}],
        ),
        "get file": lambda: b.files.retrieve(upload.id),
        "file content": lambda: b.files.content(upload.id),
        "delete file": lambda: b.files.delete(upload.id),
    }
    for name, call in refusals.items():
        assert not_found(call)["message"], name
    assert len(backend.chat_requests()) == sent, "a refused request reached the backend"
    assert upload.id not in [f.id for f in b.files.list()]

    # A's objects are as they were.
    assert retrieve(a, first["id"]) == first and retrieve(a, second["id"]) == second
    assert [i.id for i in a.conversations.items.list(conversation.id).data] == [item.id]
    assert a.files.content(upload.id).read() == b"A's own bytes"
    a.responses.cancel(running["id"])
    assert wait_for_status(a, running["id"], "cancelled")["status"] == "cancelled"
    assert follow(a, running["id"])[-1]["response"]["status"] == "cancelled"
    backend.enqueue(fb.text("Twenty-eight."))
    continued = create(a, input="Again.", previous_response_id=second["id"])
    assert continued.response.output_text == "Twenty-eight."


@pytest.mark.parametrize(("sharing", "shared"), [(None, True), ("key", False)])
def test_keys_of_one_project_share_what_they_store(make_app, backend, sharing, shared):
    settings = {"store_sharing": sharing} if sharing else {}
    project = {"project_id": "p1"}
    _, a, b = keyed_pair(make_app, settings, project, project)
    first = create(a, input="Pick a number.").body
    conversation = a.conversations.create(items=[{"role": "user", "content": "I like cats."}])
    if shared:
        assert retrieve(b, first["id"]) == first
        assert b.conversations.retrieve(conversation.id).id == conversation.id
        backend.enqueue(fb.text("Seven."))
        assert create(b, input="Again", previous_response_id=first["id"]).response.output_text
    else:
        not_found(lambda: b.responses.retrieve(first["id"]))
        not_found(lambda: b.conversations.retrieve(conversation.id))


def test_a_key_without_a_project_shares_with_no_one(make_app, backend):
    _, a, b = keyed_pair(make_app, {}, {}, {})
    first = create(a, input="Mine.").body
    not_found(lambda: b.responses.retrieve(first["id"]))


def test_in_passthrough_what_was_stored_without_a_key_stays_readable(make_app, backend):
    app = make_app()
    anonymous = app.test_client()
    stored = anonymous.post("/v1/responses", json={"model": MODEL, "input": "Hi"}).get_json()
    keyed = sdk_for(app, api_key="sk-owner-a")
    assert retrieve(keyed, stored["id"]) == stored
    mine = create(keyed, input="Mine.").body
    assert anonymous.get(f"/v1/responses/{mine['id']}").status_code == 404
    assert sdk_for(app, api_key="sk-owner-b").responses.retrieve(stored["id"]).id == stored["id"]
