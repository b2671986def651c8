"""Background mode: `background: true` runs detached (queued -> in_progress -> terminal),
is polled with GET, cancelled with POST …/cancel, and its stored event stream is
followed again from any sequence number with GET …?stream=true&starting_after=N.

The lifecycle runs on SQLite and PostgreSQL. Every body is validated as an
openai `Response`, every event against the openai event types, and each whole
stream with `tests/events.py`.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import openai
import pytest

from tests import fakebackend as fb
from tests.conftest import sdk_for
from tests.integration.helpers import (
    MODEL,
    assert_chat_body_clean,
    assert_openai_error,
    assert_refused,
    assert_valid_stream,
    create,
    last_chat,
    store_path,
)
from tests.integration.ops_helpers import (
    abandon_stream,
    follow,
    live,
    retrieve_body,
    timed_stream,
    wait_for_status,
    wait_until,
)

ANSWER = "Done in the background, one piece at a time."
LONG_ANSWER = "long " * 100
STATUS_ORDER = ("queued", "in_progress", "completed")


def slow_text(content: str, delay: float = 0.1) -> fb.Reply:
    """A streamed answer of a few chunks, `delay` seconds apart."""
    return fb.text(content, chunk_size=len(content) // 6 + 1, delay=delay)


def start(sdk: openai.OpenAI, **params: Any) -> dict[str, Any]:
    """Create a background response; check that it comes back queued and empty."""
    created = create(sdk, input="work", background=True, **params)
    body = created.body
    assert body["status"] == "queued" and body["background"] is True, body
    assert body["output"] == [] and body["usage"] is None
    return body


def statuses_until_done(sdk: openai.OpenAI, response_id: str) -> list[str]:
    """Poll until the response is over; return the distinct statuses seen, in order."""
    seen: list[str] = []

    def done() -> bool:
        status = retrieve_body(sdk, response_id)["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        return status not in ("queued", "in_progress")

    wait_until(done, f"{response_id} to finish")
    return seen


def full_stream(sdk: openai.OpenAI, response_id: str) -> list[dict[str, Any]]:
    """Every stored event of a finished background response, checked as one stream."""
    events = follow(sdk, response_id)
    assert_valid_stream(events)
    return events


@pytest.fixture
def store_app(make_app, store_settings):
    """A gateway on each supported database."""
    return make_app(**store_settings)


def test_background_response_is_queued_then_runs_to_completion(store_app, backend):
    sdk = sdk_for(store_app)
    backend.enqueue(slow_text(ANSWER))
    queued = start(sdk)
    seen = statuses_until_done(sdk, queued["id"])
    assert seen[-1] == "completed"
    assert "in_progress" in seen, f"never seen running: {seen}"
    assert [STATUS_ORDER.index(status) for status in seen] == sorted(
        STATUS_ORDER.index(status) for status in seen
    ), seen
    done = retrieve_body(sdk, queued["id"])
    assert done["output"][0]["content"][0]["text"] == ANSWER
    assert done["background"] is True and done["usage"]["input_tokens"] == 10
    assert done["id"] == queued["id"] and done["created_at"] == queued["created_at"]
    chat = last_chat(backend)
    assert chat["stream"] is True
    assert_chat_body_clean(chat)
    assert len(backend.chat_requests()) == 1


def test_stored_events_end_with_the_stored_response(store_app, backend):
    sdk = sdk_for(store_app)
    backend.enqueue(slow_text(ANSWER, delay=0.02))
    queued = start(sdk)
    wait_for_status(sdk, queued["id"], "completed")
    events = full_stream(sdk, queued["id"])
    assert events[0]["response"]["background"] is True
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"] == retrieve_body(sdk, queued["id"])


@pytest.mark.parametrize("after", [0, 3, -2], ids=["after-0", "after-3", "terminal-only"])
def test_resume_gives_exactly_the_events_after_n(store_app, backend, after):
    sdk = sdk_for(store_app)
    backend.enqueue(slow_text(ANSWER, delay=0.02))
    queued = start(sdk)
    wait_for_status(sdk, queued["id"], "completed")
    events = full_stream(sdk, queued["id"])
    n = after if after >= 0 else len(events) + after
    later = follow(sdk, queued["id"], starting_after=n)
    assert later == events[n + 1 :]
    assert [event["sequence_number"] for event in later] == list(range(n + 1, len(events)))
    assert later[-1]["type"] == "response.completed"


def test_background_stream_is_sent_live(make_app, backend):
    app = make_app()
    backend.enqueue(slow_text(ANSWER, delay=0.15))
    with live(app) as gateway:
        streamed = timed_stream(gateway.sdk, input="work", background=True)
        stored_events = follow(gateway.sdk, streamed.response.id)
    assert streamed.response.output_text == ANSWER
    assert streamed.response.background is True
    first_delta = streamed.first("response.output_text.delta")
    live_for = streamed.seconds_until(-1) - streamed.seconds_until(first_delta)
    assert live_for >= 0.4, f"the events came in one burst (spread {live_for:.2f}s)"
    assert stored_events == streamed.events


def test_resume_while_running_continues_where_the_client_left_off(make_app, backend):
    app = make_app()
    backend.enqueue(slow_text(ANSWER, delay=0.15))
    with live(app) as gateway:
        seen = abandon_stream(
            gateway.sdk, "response.output_text.delta", input="work", background=True
        )
        response_id = seen[0]["response"]["id"]
        assert retrieve_body(gateway.sdk, response_id)["status"] == "in_progress"
        rest = follow(gateway.sdk, response_id, starting_after=seen[-1]["sequence_number"])
    final = assert_valid_stream(seen + rest)
    assert final.output_text == ANSWER and final.status == "completed"
    assert backend.disconnects == 0, "leaving the stream stopped the background response"


def test_cancel_stops_a_running_background_response(store_app, backend):
    sdk = sdk_for(store_app)
    backend.enqueue(fb.text(LONG_ANSWER, chunk_size=5, delay=0.05))
    queued = start(sdk)
    wait_for_status(sdk, queued["id"], "in_progress")
    assert backend.wait_for_requests(1, 5)
    cancelled = sdk.responses.with_raw_response.cancel(queued["id"]).http_response.json()
    assert cancelled["status"] == "cancelled" and cancelled["id"] == queued["id"]
    assert backend.wait_for_disconnect(3), "the backend call went on after the cancel"
    events = full_stream(sdk, queued["id"])
    final = events[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["status"] == "cancelled"
    stored = retrieve_body(sdk, queued["id"])
    assert stored["status"] == "cancelled" and stored["output"] == final["response"]["output"]
    partial = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert len(partial) < len(LONG_ANSWER) and LONG_ANSWER.startswith(partial)
    again = sdk.responses.with_raw_response.cancel(queued["id"]).http_response.json()
    assert again["status"] == "cancelled"
    assert len(backend.chat_requests()) == 1


def test_leaving_a_background_stream_does_not_stop_the_response(make_app, backend):
    app = make_app()
    backend.enqueue(slow_text(ANSWER, delay=0.1))
    with live(app) as gateway:
        seen = abandon_stream(gateway.sdk, "response.created", input="work", background=True)
        done = wait_for_status(gateway.sdk, seen[0]["response"]["id"], "completed")
    assert done["output"][0]["content"][0]["text"] == ANSWER
    assert backend.disconnects == 0


# --- misuse -------------------------------------------------------------------


@pytest.fixture
def plain_response(app, backend) -> str:
    """The id of a finished response made without background mode."""
    return create(sdk_for(app), input="plain").response.id


def test_cancel_of_a_response_not_made_in_background_is_a_400(app, backend, plain_response):
    sdk = sdk_for(app)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.cancel(plain_response)
    assert_openai_error(caught.value, 400)
    assert retrieve_body(sdk, plain_response)["status"] == "completed"


def test_streaming_a_response_not_made_in_background_is_a_400(app, backend, plain_response):
    with pytest.raises(openai.BadRequestError) as caught:
        follow(sdk_for(app), plain_response)
    assert assert_openai_error(caught.value, 400)["param"] == "stream"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_background_without_store_is_refused(app, backend, stream):
    sdk = sdk_for(app)
    error = assert_refused(
        app,
        backend,
        lambda: sdk.responses.create(
            model=MODEL, input="x", background=True, store=False, stream=stream
        ),
        400,
    )
    assert error["param"] == "background"


@pytest.mark.parametrize(
    "call",
    [
        lambda sdk: sdk.responses.retrieve("resp_unknown"),
        lambda sdk: sdk.responses.cancel("resp_unknown"),
        lambda sdk: follow(sdk, "resp_unknown"),
        lambda sdk: follow(sdk, "resp_unknown", starting_after=3),
    ],
    ids=["retrieve", "cancel", "stream", "resume"],
)
def test_unknown_response_id_is_a_404(app, backend, call):
    with pytest.raises(openai.NotFoundError) as caught:
        call(sdk_for(app))
    assert assert_openai_error(caught.value, 404)["param"] == "response_id"
    assert not backend.requests


@pytest.mark.parametrize("starting_after", ["-2", "three", str(2**31), str(10**30)])
def test_bad_starting_after_is_a_400(app, backend, starting_after):
    sdk = sdk_for(app)
    backend.enqueue(fb.text(ANSWER))
    queued = start(sdk)
    wait_for_status(sdk, queued["id"], "completed")
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.retrieve(
            queued["id"], stream=True, extra_query={"starting_after": starting_after}
        )
    assert assert_openai_error(caught.value, 400)["param"] == "starting_after"


def test_cancel_before_the_backend_answers_closes_its_connection_at_once(make_app, backend):
    app = make_app()
    sdk = sdk_for(app)
    backend.enqueue(fb.hang(30.0))  # accepts, reads the request, never answers
    queued = start(sdk)
    assert backend.wait_for_requests(1, 5)
    assert sdk.responses.cancel(queued["id"]).status == "cancelled"
    closed = backend.wait_for_disconnect(1)
    final = full_stream(sdk, queued["id"])[-1]  # waits for the runner to end, either way
    assert closed, "the backend kept its connection for a cancelled response"
    assert final["type"] == "response.incomplete" and final["response"]["status"] == "cancelled"
    health = app.test_client().get("/health").get_json()
    assert health["circuit_breaker"]["consecutive_failures"] == 0, "a cancel counted as a failure"


def test_cancel_made_by_another_worker_reaches_the_runner_within_a_second(make_app, backend):
    app = make_app()
    sdk = sdk_for(app)
    backend.enqueue(fb.hang(30.0))
    queued = start(sdk)
    assert backend.wait_for_requests(1, 5)
    with sqlite3.connect(store_path(app)) as other_worker:  # its cancel is a row in the store
        other_worker.execute(
            "UPDATE responses SET status = 'cancelled' WHERE id = ?", (queued["id"],)
        )
    assert backend.wait_for_disconnect(1), "the runner did not see the cancel in the store"
    assert full_stream(sdk, queued["id"])[-1]["response"]["status"] == "cancelled"


def test_background_response_whose_backend_fails_ends_failed(store_app, backend):
    sdk = sdk_for(store_app)
    backend.enqueue(fb.error(500, {"error": {"message": "The model crashed.", "code": None}}))
    queued = start(sdk)
    failed = wait_for_status(sdk, queued["id"], "failed")
    crashed = "Backend 'default' failed (HTTP 500): The model crashed."
    assert failed["error"] == {"code": "server_error", "message": crashed}
    events = full_stream(sdk, queued["id"])
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"] == failed


def test_a_finished_background_response_can_be_continued(store_app, backend):
    sdk = sdk_for(store_app)
    backend.enqueue(slow_text(ANSWER, delay=0.02))
    queued = start(sdk)
    wait_for_status(sdk, queued["id"], "completed")
    follow_up = create(sdk, input="and then?", previous_response_id=queued["id"])
    assert follow_up.response.status == "completed"
    messages = last_chat(backend)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "work" and messages[1]["content"] == ANSWER


# --- leases: a runner that dies leaves no response running forever ----------------


def test_a_runner_renews_its_lease_through_an_answer_longer_than_it(store_app_leased, backend):
    app, lease = store_app_leased
    sdk = sdk_for(app)
    backend.enqueue(fb.text(ANSWER, chunk_size=4, delay=lease / 4))  # ~3 leases long
    queued = start(sdk)
    # Every retrieval would fail a response whose lease ran out: none may.
    statuses = statuses_until_done(sdk, queued["id"])
    assert statuses[-1] == "completed", statuses
    assert retrieve_body(sdk, queued["id"])["output"][0]["content"][0]["text"] == ANSWER


@pytest.fixture
def store_app_leased(make_app, store_settings):
    """A gateway on each database whose background runners hold 0.6 s leases."""
    return make_app(background_lease=0.6, **store_settings), 0.6


def runner_that_died(app: Any) -> str:
    """Store a background response as a worker killed mid-answer leaves it; return its id.

    Its first events are stored (created, in_progress, a finished reasoning
    item, the start of a message), its lease has run out, and nothing runs it.
    """
    from app.auth.principal import Owner
    from app.protocol.ids import new_id
    from app.protocol.responses.events import ResponseEmitter
    from app.protocol.responses.objects import new_response
    from app.store import db, responses

    request = {"model": MODEL, "input": "work", "background": True}
    response = new_response(request, new_id("resp"), int(time.time()))
    response["status"] = "in_progress"
    emitter = ResponseEmitter(response)
    events = [*emitter.start(), *emitter.reasoning_delta("Hmm."), *emitter.text_delta("Half an")]
    with app.app_context(), db.connection_context():
        user = {"type": "message", "role": "user", "id": new_id("msg"), "content": []}
        anonymous = Owner()
        responses.start_response(anonymous, response, [user], None, lease_until=time.time() - 1)
        responses.append_events(anonymous, response["id"], events)
    return response["id"]


def test_a_response_whose_runner_died_fails_for_its_followers(store_app, backend):
    sdk = sdk_for(store_app)
    response_id = runner_that_died(store_app)
    events = follow(sdk, response_id)  # ends at once: no waiting for the read timeout
    final = assert_valid_stream(events)
    assert events[-1]["type"] == "response.failed"
    assert final.status == "failed" and "worker running it ended" in final.error.message
    reasoning, message = final.output  # what had finished, and what was under way
    assert (reasoning.type, reasoning.status) == ("reasoning", "completed")
    assert (message.status, message.content[0].text) == ("incomplete", "Half an")
    stored = retrieve_body(sdk, response_id)
    assert stored == events[-1]["response"]
    assert full_stream(sdk, response_id) == events  # failed once: the same end for everyone


def test_retrieving_a_response_whose_runner_died_fails_it(store_app, backend):
    sdk = sdk_for(store_app)
    response_id = runner_that_died(store_app)
    stored = retrieve_body(sdk, response_id)
    assert stored["status"] == "failed" and stored["error"]["code"] == "server_error"
    follow_up = create(sdk, input="again?", previous_response_id=response_id)
    assert follow_up.response.status == "completed"


def test_the_sweep_fails_every_response_whose_runner_died(store_app, backend):
    from app.services.sweep import sweep

    sdk = sdk_for(store_app)
    dead = [runner_that_died(store_app) for _ in range(3)]
    with store_app.app_context():
        assert sweep().abandoned == 3
        assert sweep().abandoned == 0
    assert {retrieve_body(sdk, response_id)["status"] for response_id in dead} == {"failed"}
