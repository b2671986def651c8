"""/v1/prompts and a response's `prompt`: versioned templates, rendered for the model.

Prompts are kept in the store (SQLite and PostgreSQL), versioned with an
optimistic check (an update from a version that is no longer the latest is
a 409), and owned like every stored object. A response that names one is
given the rendered template first, and echoes the reference with its
version, as the API does.
"""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest
from openai.types.responses import Response

from tests.conftest import sdk_for
from tests.documents import png
from tests.integration.helpers import MODEL, assert_openai_error, assert_refused, create, last_chat

TEMPLATE = "You are a {{role}}. Answer in {{language}}."


@pytest.fixture
def prompts_app(make_app, fresh_store):
    return make_app(**fresh_store)


@pytest.fixture
def client(prompts_app) -> openai.OpenAI:
    return sdk_for(prompts_app)


def call(client: openai.OpenAI, method: str, path: str, body: Any = None, **query: Any) -> Any:
    """The prompts API through the SDK's own request machinery (it has no helpers for it)."""
    options: dict[str, Any] = {"cast_to": object}
    if query:
        options["options"] = {"params": query}
    if method == "get":
        return client.get(path, **options)
    if method == "delete":
        return client.delete(path, **options)
    return client.post(path, body=body, **options)


def make_prompt(client: openai.OpenAI, **fields: Any) -> dict[str, Any]:
    body = {"name": "support", "template": TEMPLATE, "metadata": {"team": "cx"}, **fields}
    return call(client, "post", "/prompts", body)


def test_prompts_are_created_versioned_and_listed(client):
    made = make_prompt(client, description="The support persona")
    assert made["id"].startswith("pmpt_") and made["object"] == "prompt"
    assert (made["version"], made["default_version"], made["latest_version"]) == (1, 1, 1)
    assert made["variables"] == ["role", "language"] and made["template"] == TEMPLATE
    assert made["metadata"] == {"team": "cx"}

    second = call(
        client, "post", f"/prompts/{made['id']}", {"version": 1, "template": "Be a {{role}}."}
    )
    assert (second["version"], second["default_version"], second["latest_version"]) == (2, 2, 2)
    assert second["variables"] == ["role"] and second["name"] == "support"
    first = call(client, "get", f"/prompts/{made['id']}", version=1)
    assert first["template"] == TEMPLATE and first["version"] == 1
    versions = call(client, "get", f"/prompts/{made['id']}/versions")
    assert [(v["version"], v["is_default"]) for v in versions["data"]] == [(2, True), (1, False)]

    back = call(client, "post", f"/prompts/{made['id']}/default_version", {"version": 1})
    assert (back["version"], back["default_version"], back["latest_version"]) == (1, 1, 2)
    renamed = call(client, "post", f"/prompts/{made['id']}", {"version": 2, "name": "helpdesk"})
    assert (renamed["version"], renamed["name"]) == (3, "helpdesk")
    assert renamed["template"] == "Be a {{role}}."  # carried over from the version it came from

    other = make_prompt(client, name="other")
    listed = call(client, "get", "/prompts")
    assert [p["id"] for p in listed["data"]] == [other["id"], made["id"]]
    deleted = call(client, "delete", f"/prompts/{made['id']}")
    assert deleted == {"id": made["id"], "object": "prompt.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        call(client, "get", f"/prompts/{made['id']}")


def test_an_update_from_a_stale_version_is_a_conflict_and_changes_nothing(client):
    made = make_prompt(client)
    call(client, "post", f"/prompts/{made['id']}", {"version": 1, "template": "First edit."})
    with pytest.raises(openai.ConflictError) as caught:
        call(client, "post", f"/prompts/{made['id']}", {"version": 1, "template": "Lost edit."})
    error = assert_openai_error(caught.value, 409)
    assert (error["param"], error["code"]) == ("version", "stale_version")
    latest = call(client, "get", f"/prompts/{made['id']}")
    assert (latest["latest_version"], latest["template"]) == (2, "First edit.")


@pytest.mark.parametrize(
    "path, body, status, param",
    [
        ("/prompts", {"template": "x"}, 400, "name"),
        ("/prompts", {"name": "x"}, 400, "template"),
        ("/prompts", {"name": "x", "template": 5}, 400, "template"),
        ("/prompts", {"name": "x", "template": "t", "colour": 1}, 400, "colour"),
        ("/prompts/{id}", {"template": "t"}, 400, "version"),
        ("/prompts/{id}", {"version": 9, "template": "t"}, 404, "version"),
        ("/prompts/{id}/default_version", {"version": 7}, 404, "version"),
        ("/prompts/pmpt_nope", {"version": 1}, 404, "prompt_id"),
    ],
)
def test_bad_prompt_requests_are_refused(client, path, body, status, param):
    made = make_prompt(client)
    with pytest.raises(openai.APIStatusError) as caught:
        call(client, "post", path.replace("{id}", made["id"]), body)
    assert assert_openai_error(caught.value, status)["param"] == param
    assert call(client, "get", f"/prompts/{made['id']}")["latest_version"] == 1


def test_a_response_renders_the_prompt_first_and_echoes_it(client, backend):
    made = make_prompt(client)
    result = create(
        client,
        input="Where is my parcel?",
        prompt={"id": made["id"], "variables": {"role": "courier", "language": "French"}},
    )
    messages = last_chat(backend)["messages"]
    assert messages[0] == {"role": "system", "content": "You are a courier. Answer in French."}
    assert messages[-1] == {"role": "user", "content": "Where is my parcel?"}
    echoed = result.response.prompt
    assert (echoed.id, echoed.version) == (made["id"], "1")
    assert echoed.variables == {"role": "courier", "language": "French"}
    stored = client.responses.retrieve(result.response.id)
    assert stored.prompt.model_dump() == echoed.model_dump()
    assert [i.role for i in client.responses.input_items.list(stored.id).data] == ["user"]


def test_a_prompt_version_and_part_variables(client, backend):
    made = make_prompt(client, template="Describe {{picture}} for a {{role}}.")
    call(client, "post", f"/prompts/{made['id']}", {"version": 1, "template": "Newer {{role}}."})
    image = {
        "type": "input_image",
        "image_url": "data:image/png;base64," + base64.b64encode(png()).decode(),
    }
    result = create(
        client,
        input="Go.",
        prompt={
            "id": made["id"],
            "version": "1",
            "variables": {"picture": image, "role": {"type": "input_text", "text": "child"}},
        },
    )
    system, attached, user = last_chat(backend)["messages"]
    assert system["content"] == "Describe (the image 'picture', attached below) for a child."
    assert attached["role"] == "user" and attached["content"][0]["type"] == "image_url"
    assert user["content"] == "Go."
    Response.model_validate(result.body)
    assert result.response.prompt.version == "1"


@pytest.mark.parametrize(
    "prompt, status, param",
    [
        ({"id": "pmpt_nope"}, 404, "prompt.id"),
        ({"id": "{id}", "version": "9"}, 404, "prompt.version"),
        ({"id": "{id}", "version": "one"}, 400, "prompt.version"),
        ({"id": "{id}", "variables": {"role": "x"}}, 400, "prompt.variables"),
        ({"id": "{id}", "variables": {"role": 5, "language": "x"}}, 400, "prompt.variables.role"),
        ({"variables": {}}, 400, "prompt.id"),
        ({"id": "{id}", "colour": 1}, 400, "prompt"),
    ],
)
def test_a_bad_prompt_reference_is_refused_with_nothing_sent_or_stored(
    make_app, backend, prompt, status, param
):
    app = make_app()
    sdk = sdk_for(app)
    made = make_prompt(sdk)
    reference = {k: (made["id"] if v == "{id}" else v) for k, v in prompt.items()}
    error = assert_refused(
        app,
        backend,
        lambda: sdk.responses.create(model=MODEL, input="x", prompt=reference),
        status,
    )
    assert error["param"] == param


def test_another_owners_prompt_is_not_there(prompts_app, backend):
    owner, other = (
        sdk_for(prompts_app, api_key="sk-owner-a"),
        sdk_for(prompts_app, api_key="sk-owner-b"),
    )
    made = make_prompt(owner)
    pid = made["id"]
    for method, path, body in [
        ("get", f"/prompts/{pid}", None),
        ("post", f"/prompts/{pid}", {"version": 1, "template": "mine"}),
        ("delete", f"/prompts/{pid}", None),
        ("get", f"/prompts/{pid}/versions", None),
        ("post", f"/prompts/{pid}/default_version", {"version": 1}),
    ]:
        with pytest.raises(openai.NotFoundError):
            call(other, method, path, body)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(
            model=MODEL, input="x", prompt={"id": pid, "variables": {"role": "a", "language": "b"}}
        )
    assert call(other, "get", "/prompts")["data"] == []
    assert call(owner, "get", f"/prompts/{pid}")["latest_version"] == 1
