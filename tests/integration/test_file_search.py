"""`file_search` run by the gateway inside a response: the tool loop, streamed and not.

The fake model first calls the `file_search` function the gateway gave it,
then answers from the passages, citing one as `[1]`. The client sees a
`file_search_call` item (never the function call), its events in the one
stream, the answer with a `file_citation` annotation where it cites, and
every turn's usage summed; the second backend call carries the results.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import openai
import pytest
from openai.types.responses import Response

from tests import fakebackend as fb
from tests.conftest import sdk_for
from tests.integration.helpers import (
    MODEL,
    assert_refused,
    assert_valid_stream,
    create,
    sse_events,
    store_path,
)

WAIT_SECONDS = 15.0
HANDBOOK = "Employees get 25 days of paid leave a year, and 5 more after ten years."
CAFETERIA = "The cafeteria serves soup on Mondays and fish on Fridays."


def ingested_store(sdk: openai.OpenAI, **files: str) -> tuple[str, dict[str, str]]:
    ids = {
        name: sdk.files.create(file=(f"{name}.txt", text.encode()), purpose="assistants").id
        for name, text in files.items()
    }
    store = sdk.vector_stores.create(name="company", file_ids=list(ids.values()))
    deadline = time.monotonic() + WAIT_SECONDS
    while sdk.vector_stores.retrieve(store.id).status != "completed":
        assert time.monotonic() < deadline, "the files were never ingested"
        time.sleep(0.05)
    return store.id, ids


def search_then_answer(backend, answer: str = "You get 25 days [1].", queries=None) -> None:
    arguments = json.dumps({"queries": queries or ["paid leave days"]})
    backend.enqueue(fb.tool_calls([{"name": "file_search", "arguments": arguments}]))
    backend.enqueue(fb.text(answer))


def tool(store_id: str, **settings: Any) -> dict[str, Any]:
    return {"type": "file_search", "vector_store_ids": [store_id], **settings}


def test_the_gateway_searches_and_the_model_answers_with_a_citation(sdk, backend):
    store_id, ids = ingested_store(sdk, handbook=HANDBOOK, cafeteria=CAFETERIA)
    search_then_answer(backend)
    result = create(
        sdk,
        input="How many days of leave do I get?",
        tools=[tool(store_id)],
        include=["file_search_call.results"],
    )
    response = result.response
    call, message = response.output
    assert call.type == "file_search_call" and call.status == "completed"
    assert call.id.startswith("fs_") and call.queries == ["paid leave days"]
    assert call.results[0].file_id == ids["handbook"] and call.results[0].text == HANDBOOK
    assert message.content[0].text == "You get 25 days [1]."
    (citation,) = message.content[0].annotations
    assert citation.model_dump() == {
        "type": "file_citation",
        "file_id": ids["handbook"],
        "filename": "handbook.txt",
        "index": len("You get 25 days "),
    }
    assert response.tools[0].type == "file_search"  # as the client gave it

    first, second = backend.chat_requests()[-2:]
    assert [t["function"]["name"] for t in first["tools"]] == ["file_search"]
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool" and HANDBOOK in tool_message["content"]
    assert tool_message["content"].startswith("[1] handbook.txt:")
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "file_search"
    usage = fb.default_usage("You get 25 days [1].")
    assert response.usage.output_tokens > usage["completion_tokens"]  # both turns counted


def test_without_include_the_call_has_no_results_and_a_chain_replays_it(sdk, backend):
    store_id, _ = ingested_store(sdk, handbook=HANDBOOK)
    search_then_answer(backend)
    first = create(sdk, input="Leave?", tools=[tool(store_id)]).response
    assert first.output[0].results is None
    stored = sdk.responses.retrieve(first.id)
    assert [item.type for item in stored.output] == ["file_search_call", "message"]
    backend.enqueue(fb.text("Thirty after ten years."))
    create(sdk, input="And later?", previous_response_id=first.id, tools=[tool(store_id)])
    replayed = backend.chat_requests()[-1]["messages"]
    kinds = [(m["role"], bool(m.get("tool_calls"))) for m in replayed]
    assert ("assistant", True) in kinds and replayed[-1]["content"] == "And later?"


def test_a_streamed_search_shows_every_step_in_one_sequence(sdk, backend):
    store_id, ids = ingested_store(sdk, handbook=HANDBOOK)
    search_then_answer(backend)
    with sdk.responses.with_streaming_response.create(
        model=MODEL,
        input="How many days of leave?",
        tools=[tool(store_id)],
        include=["file_search_call.results"],
        stream=True,
    ) as raw:
        events = sse_events(raw.iter_lines())
    response = assert_valid_stream(events)
    types = [event["type"] for event in events]
    assert "response.function_call_arguments.delta" not in types  # the gateway's own call
    steps = [t for t in types if t.startswith("response.file_search_call")]
    assert steps == [
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
    ]
    assert types.index("response.file_search_call.completed") < types.index(
        "response.output_text.delta"
    )
    (added,) = [e for e in events if e["type"] == "response.output_text.annotation.added"]
    assert added["annotation"]["file_id"] == ids["handbook"]
    assert [item.type for item in response.output] == ["file_search_call", "message"]
    assert response.output[1].content[0].annotations[0].file_id == ids["handbook"]
    stored = sdk.responses.retrieve(response.id)
    assert stored.model_dump() == response.model_dump()


def test_a_failed_search_is_a_failed_call_and_the_model_is_told(make_app, fresh_store, backend):
    sdk = sdk_for(make_app(embedding_model="fake-embed", **fresh_store))
    store_id, _ = ingested_store(sdk, handbook=HANDBOOK)
    backend.fail_embeddings(1)  # the query's embedding fails
    search_then_answer(backend, answer="I could not search.")
    with sdk.responses.with_streaming_response.create(
        model=MODEL, input="Leave?", tools=[tool(store_id)], stream=True
    ) as raw:
        events = sse_events(raw.iter_lines())
    response = assert_valid_stream(events)
    assert response.status == "completed"
    assert [(i.type, i.status) for i in response.output] == [
        ("file_search_call", "failed"),
        ("message", "completed"),
    ]
    told = backend.chat_requests()[-1]["messages"][-1]
    assert told["role"] == "tool" and told["content"].startswith("The search failed")


def test_the_tools_filters_and_max_num_results_are_honoured(sdk, backend):
    handbook = sdk.files.create(file=("handbook.txt", HANDBOOK.encode()), purpose="assistants")
    memo = sdk.files.create(
        file=("memo.txt", b"Leave days: 30 for managers."), purpose="assistants"
    )
    store = sdk.vector_stores.create(name="s")
    for file, team in ((handbook, "all"), (memo, "managers")):
        sdk.vector_stores.files.create(
            vector_store_id=store.id, file_id=file.id, attributes={"team": team}
        )
    deadline = time.monotonic() + WAIT_SECONDS
    while sdk.vector_stores.retrieve(store.id).status != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    search_then_answer(backend, queries=["leave days"])
    only_all = {"type": "eq", "key": "team", "value": "all"}
    response = create(
        sdk,
        input="Leave?",
        tools=[tool(store.id, filters=only_all, max_num_results=1)],
        include=["file_search_call.results"],
    ).response
    assert [r.file_id for r in response.output[0].results] == [handbook.id]


def test_max_tool_calls_stops_the_searching(sdk, backend):
    store_id, _ = ingested_store(sdk, handbook=HANDBOOK)
    arguments = json.dumps({"queries": ["leave"]})
    backend.enqueue(fb.tool_calls([{"name": "file_search", "arguments": arguments}]))
    backend.enqueue(fb.text("Done."))
    response = create(sdk, input="Leave?", tools=[tool(store_id)], max_tool_calls=1).response
    assert [item.type for item in response.output] == ["file_search_call", "message"]
    assert backend.chat_requests()[-1]["tool_choice"] == "none"


def test_a_client_function_called_beside_a_search_ends_the_response(sdk, backend):
    store_id, _ = ingested_store(sdk, handbook=HANDBOOK)
    weather = {"type": "function", "name": "weather", "parameters": {"type": "object"}}
    backend.enqueue(
        fb.tool_calls(
            [
                {"name": "file_search", "arguments": json.dumps({"queries": ["leave"]})},
                {"name": "weather", "arguments": "{}"},
            ]
        )
    )
    response = create(sdk, input="Leave and weather?", tools=[tool(store_id), weather]).response
    assert [item.type for item in response.output] == ["function_call", "file_search_call"]
    assert len(backend.chat_requests()) == 1  # the client answers the weather call first


def test_a_backend_failure_in_the_second_turn_fails_the_response_with_the_search_kept(
    app, sdk, backend
):
    store_id, _ = ingested_store(sdk, handbook=HANDBOOK)
    arguments = json.dumps({"queries": ["leave"]})
    backend.enqueue(fb.tool_calls([{"name": "file_search", "arguments": arguments}]))
    backend.enqueue(fb.error(500))
    with sdk.responses.with_streaming_response.create(
        model=MODEL, input="Leave?", tools=[tool(store_id)], stream=True
    ) as raw:
        events = sse_events(raw.iter_lines())
    failed = assert_valid_stream(events)
    assert failed.status == "failed"
    assert [item.type for item in failed.output] == ["file_search_call"]
    assert sdk.responses.retrieve(failed.id).status == "failed"

    # Not streamed: the error is the answer, and the failed response is stored all the same.
    backend.enqueue(fb.tool_calls([{"name": "file_search", "arguments": arguments}]))
    backend.enqueue(fb.error(500))
    with pytest.raises(openai.InternalServerError):
        sdk.responses.create(model=MODEL, input="Leave?", tools=[tool(store_id)])
    with sqlite3.connect(store_path(app)) as connection:
        (body,) = connection.execute(
            "SELECT body FROM responses WHERE id != ? ORDER BY id DESC LIMIT 1", (failed.id,)
        ).fetchone()
    stored = Response.model_validate(json.loads(body))
    assert stored.status == "failed" and stored.error.code == "server_error"
    assert [item.type for item in stored.output] == ["file_search_call"]


def test_a_background_response_searches_too(sdk, backend):
    store_id, _ = ingested_store(sdk, handbook=HANDBOOK)
    search_then_answer(backend)
    queued = sdk.responses.create(
        model=MODEL, input="Leave?", tools=[tool(store_id)], background=True
    )
    deadline = time.monotonic() + WAIT_SECONDS
    while (done := sdk.responses.retrieve(queued.id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert done.status == "completed"
    assert [item.type for item in done.output] == ["file_search_call", "message"]
    Response.model_validate(done.model_dump())


@pytest.mark.parametrize(
    "tools, param, status",
    [
        ([{"type": "file_search"}], "tools.vector_store_ids", 400),
        ([{"type": "file_search", "vector_store_ids": "vs_x"}], "tools.vector_store_ids", 400),
        ([{"type": "file_search", "vector_store_ids": ["vs_nope"]}], "tools.vector_store_ids", 404),
        (
            [{"type": "file_search", "vector_store_ids": ["vs_nope"], "max_num_results": 99}],
            "tools.max_num_results",
            400,
        ),
        (
            [
                {
                    "type": "file_search",
                    "vector_store_ids": ["vs_nope"],
                    "filters": {"type": "eq", "key": "k"},
                }
            ],
            "tools.filters",
            400,
        ),
        (
            [
                {"type": "file_search", "vector_store_ids": ["vs_nope"]},
                {"type": "function", "name": "file_search", "parameters": {}},
            ],
            "tools",
            400,
        ),
    ],
)
def test_a_bad_file_search_tool_is_refused_before_anything_is_sent(
    app, sdk, backend, tools, param, status
):
    error = assert_refused(
        app, backend, lambda: sdk.responses.create(model=MODEL, input="x", tools=tools), status
    )
    assert error["param"] == param


def test_another_owners_vector_store_is_a_404(app, backend):
    owner, other = sdk_for(app, api_key="sk-owner-a"), sdk_for(app, api_key="sk-owner-b")
    store_id, _ = ingested_store(owner, handbook=HANDBOOK)
    error = assert_refused(
        app,
        backend,
        lambda: other.responses.create(model=MODEL, input="x", tools=[tool(store_id)]),
        404,
    )
    assert store_id in error["message"]
