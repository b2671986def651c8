"""Resilience under real faults: keep-alive through backend silence, client disconnects,
hung and failing backends, the circuit breaker, limits, WebSocket refusal, and a
store that cannot write.

Every fault is injected for real by the fake backend (slow first byte, hang,
errors, oversized SSE lines) or by a real client hanging up. Tests that depend
on a socket (disconnects, timing, concurrency) serve the gateway in a thread
(`ops_helpers.live`) and drive it with the real openai SDK.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from itertools import pairwise
from typing import Any

import openai
import psycopg
import pytest
import requests
from openai.types.responses import ResponseInProgressEvent
from prometheus_client import REGISTRY

from app import store
from app.backends.breaker import DEFAULT_RESET_SECONDS
from app.store.models import StoredResponse, db
from tests import fakebackend as fb
from tests.conftest import sdk_for
from tests.integration.helpers import (
    DEFAULT_TEXT,
    MODEL,
    assert_nothing_stored,
    assert_openai_error,
    assert_refused,
    closed_port,
    create,
    stored_count,
)
from tests.integration.ops_helpers import (
    abandon_stream,
    live,
    no_opener_left,
    opener_threads,
    retrieve_body,
    timed_stream,
    wait_for_status,
    wait_until,
)

KEEPALIVE = 0.2
SILENCE = 1.0
ANSWER = "The answer came after a long think."
LONG_ANSWER = "word " * 200
BREAKER_THRESHOLD = 5
MAX_SSE_LINE = 1024 * 1024
RATE_LIMITED = {"error": {"message": "Slow down.", "type": "rate_limit_error", "code": None}}
SERVER_FAILED = {"error": {"message": "The model crashed.", "type": "server_error", "code": None}}


def keepalives_before(events: list[dict[str, Any]], position: int) -> int:
    """`response.in_progress` events sent after the opening one and before `position`."""
    return [event["type"] for event in events[2:position]].count("response.in_progress")


def breaker_state(http: Any) -> tuple[int, dict[str, Any]]:
    """GET /health: its status and the single backend's breaker state."""
    reply = http.get("/health")
    body = reply.get_json()
    assert set(body) == {"status", "circuit_breaker", "backends"}, body
    assert body["status"] == ("healthy" if reply.status_code == 200 else "unhealthy")
    (backend_state,) = body["backends"]
    assert backend_state["name"] == "default"
    assert body["circuit_breaker"] == backend_state["circuit_breaker"]
    return reply.status_code, backend_state["circuit_breaker"]


def fail_backend(sdk: openai.OpenAI, backend: fb.FakeBackend, times: int) -> None:
    """Make `times` requests that the backend answers with a 500."""
    for _ in range(times):
        backend.enqueue(fb.error(500, SERVER_FAILED))
        with pytest.raises(openai.InternalServerError):
            sdk.responses.create(model=MODEL, input="x")


def assert_fails_fast(app: Any, backend: fb.FakeBackend, sdk: openai.OpenAI) -> None:
    """The open circuit refuses at once: 503 circuit_open, nothing sent upstream."""
    sent = len(backend.chat_requests())
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.responses.create(model=MODEL, input="x")
    error = assert_openai_error(caught.value, 503)
    assert error["code"] == "circuit_open" and error["type"] == "server_error"
    assert time.monotonic() - started < 0.5
    assert len(backend.chat_requests()) == sent, "an open circuit sent a request upstream"


class ManualClock:
    """A clock the test moves by hand (the breaker's clock is injectable)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clocked_app(make_app: Any) -> tuple[Any, ManualClock]:
    """A gateway whose breaker reads a manual clock."""
    app = make_app()
    clock = ManualClock()
    app.extensions["backends"].all[0].breaker.clock = clock
    return app, clock


# --- keep-alive through backend silence --------------------------------------


def test_keepalive_events_fill_the_silence_before_the_first_byte(make_app, backend):
    app = make_app(keepalive_seconds=KEEPALIVE)
    backend.enqueue(fb.slow_first_byte(SILENCE, fb.text(ANSWER)))
    with live(app) as gateway:
        streamed = timed_stream(gateway.sdk, input="think hard")
    assert streamed.response.output_text == ANSWER
    first_item = streamed.first("response.output_item.added")
    assert streamed.seconds_until(first_item) >= SILENCE * 0.9, "the backend was not silent"
    assert keepalives_before(streamed.events, first_item) >= 3
    times = [streamed.started, *streamed.arrivals[: first_item + 1]]
    gaps = [later - earlier for earlier, later in pairwise(times)]
    assert max(gaps) < KEEPALIVE * 2.5, f"the stream went silent for {max(gaps):.2f}s"
    assert streamed.headers["cache-control"] == "no-cache"
    assert streamed.headers["x-accel-buffering"] == "no"


def test_keepalive_events_also_flow_between_slow_chunks(make_app, backend):
    app = make_app(keepalive_seconds=KEEPALIVE)
    backend.enqueue(fb.text(ANSWER, chunk_size=len(ANSWER) // 2 + 1, delay=SILENCE))
    with live(app) as gateway:
        streamed = timed_stream(gateway.sdk, input="hi")
    first_delta = streamed.first("response.output_text.delta")
    done = streamed.first("response.output_text.done")
    middle = streamed.types[first_delta:done]
    assert middle.count("response.in_progress") >= 3, middle
    assert streamed.response.output_text == ANSWER


def test_sdk_stream_helper_returns_the_answer_despite_keepalives(make_app, backend):
    app = make_app(keepalive_seconds=KEEPALIVE)
    backend.enqueue(fb.slow_first_byte(SILENCE, fb.text(ANSWER)))
    with live(app) as gateway, gateway.sdk.responses.stream(model=MODEL, input="hi") as stream:
        events = list(stream)
        final = stream.get_final_response()
    in_progress = [event for event in events if isinstance(event, ResponseInProgressEvent)]
    assert len(in_progress) >= 3
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text == ANSWER
    assert final.status == "completed"


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [(500, SERVER_FAILED, "server_error"), (429, RATE_LIMITED, "rate_limit_exceeded")],
    ids=["500", "429"],
)
def test_backend_error_after_the_keepalive_interval_ends_in_response_failed(
    make_app, backend, status, body, code
):
    app = make_app(keepalive_seconds=KEEPALIVE)
    backend.enqueue(fb.slow_first_byte(SILENCE, fb.error(status, body)))
    with live(app) as gateway:
        streamed = timed_stream(gateway.sdk, input="hi")
        stored = retrieve_body(gateway.sdk, streamed.response.id)
    assert streamed.types[-1] == "response.failed"
    assert keepalives_before(streamed.events, len(streamed.events) - 1) >= 2
    failed = streamed.response
    said = body["error"]["message"]
    message = f"Backend 'default' failed (HTTP {status}): {said}" if status >= 500 else said
    assert failed.status == "failed"
    assert failed.error.code == code and failed.error.message == message
    assert stored["status"] == "failed"
    assert stored["error"] == {"code": code, "message": message}


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(500, openai.InternalServerError), (503, openai.InternalServerError)],
)
def test_backend_error_before_the_keepalive_interval_is_an_http_error(
    make_app, backend, status, error_class
):
    app = make_app(keepalive_seconds=KEEPALIVE)
    backend.enqueue(fb.error(status, SERVER_FAILED))
    with live(app) as gateway, pytest.raises(error_class) as caught:
        gateway.sdk.responses.create(model=MODEL, input="hi", stream=True)
    assert caught.value.response.headers["content-type"].startswith("application/json")
    error = assert_openai_error(caught.value, status)
    said = SERVER_FAILED["error"]["message"]
    assert error["message"] == f"Backend 'default' failed (HTTP {status}): {said}"
    assert_nothing_stored(app)


# --- client disconnects -------------------------------------------------------


def test_client_disconnect_closes_the_backend_call_and_stores_the_partial_answer(make_app, backend):
    app = make_app()
    backend.enqueue(fb.text(LONG_ANSWER, chunk_size=5, delay=0.05))
    openers = opener_threads()
    with live(app) as gateway:
        seen = abandon_stream(gateway.sdk, "response.output_text.delta", input="talk")
        hung_up = time.monotonic()
        assert backend.wait_for_disconnect(5), "the backend call stayed open"
        assert time.monotonic() - hung_up < 1.0, "the backend call was not closed at once"
        stored = wait_for_status(gateway.sdk, seen[0]["response"]["id"], "cancelled")
        no_opener_left(openers)
        (message,) = stored["output"]
        partial = message["content"][0]["text"]
        assert partial and LONG_ANSWER.startswith(partial) and len(partial) < len(LONG_ANSWER)
        assert message["status"] == "incomplete"
        after = create(gateway.sdk, input="still there?")
    assert after.response.output_text == DEFAULT_TEXT
    assert backend.disconnects == 1


def test_client_leaving_during_backend_silence_closes_the_backend_call(make_app, backend):
    app = make_app(keepalive_seconds=KEEPALIVE)
    backend.enqueue(fb.slow_first_byte(5.0, fb.text(ANSWER)))
    openers = opener_threads()
    with live(app) as gateway:
        seen = abandon_stream(gateway.sdk, "response.in_progress", input="think")
        assert backend.wait_for_disconnect(1.5), (
            "the backend kept computing for a client that left during the silence"
        )
        wait_for_status(gateway.sdk, seen[0]["response"]["id"], "cancelled")
        no_opener_left(openers)


def test_a_hung_backend_does_not_block_other_requests(make_app, backend):
    read_timeout = 1.5
    app = make_app(backends=[{"base_url": backend.base_url, "read_timeout": read_timeout}])
    backend.enqueue(fb.hang(3.0))
    outcome: dict[str, Any] = {}

    def hung_request(client: openai.OpenAI) -> None:
        started = time.monotonic()
        try:
            client.responses.create(model=MODEL, input="hang")
        except openai.APIStatusError as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    with live(app) as gateway:
        hung = threading.Thread(target=hung_request, args=(gateway.sdk,))
        hung.start()
        assert backend.wait_for_requests(1, 2)
        started = time.monotonic()
        quick = create(gateway.sdk, input="quick")
        assert time.monotonic() - started < 0.5
        assert quick.response.output_text == DEFAULT_TEXT
        hung.join(10)
    error = assert_openai_error(outcome["error"], 504)
    assert error["code"] == "backend_timeout"
    assert read_timeout <= outcome["seconds"] < read_timeout + 1.0


def test_a_hung_stream_keeps_alive_then_fails_within_the_read_timeout(make_app, backend):
    read_timeout = 1.0
    app = make_app(
        keepalive_seconds=KEEPALIVE,
        backends=[{"base_url": backend.base_url, "read_timeout": read_timeout}],
    )
    backend.enqueue(fb.hang(3.0))
    with live(app) as gateway:
        streamed = timed_stream(gateway.sdk, input="hang")
    assert streamed.response.status == "failed"
    assert streamed.response.error.code == "server_error"
    assert keepalives_before(streamed.events, len(streamed.events) - 1) >= 2
    assert read_timeout <= streamed.seconds_until(-1) < read_timeout + 1.0


# --- circuit breaker ----------------------------------------------------------


def test_breaker_opens_after_five_failures_and_fails_fast(app, backend):
    sdk, http = sdk_for(app), app.test_client()
    fail_backend(sdk, backend, BREAKER_THRESHOLD - 1)
    assert breaker_state(http) == (
        200,
        {"enabled": True, "is_open": False, "consecutive_failures": BREAKER_THRESHOLD - 1},
    )
    fail_backend(sdk, backend, 1)
    assert breaker_state(http) == (
        503,
        {"enabled": True, "is_open": True, "consecutive_failures": BREAKER_THRESHOLD},
    )
    assert_fails_fast(app, backend, sdk)
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.responses.create(model=MODEL, input="x", stream=True)
    assert assert_openai_error(caught.value, 503)["code"] == "circuit_open"
    assert_nothing_stored(app)


def test_breaker_lets_a_trial_through_after_a_short_pause_and_closes(app, backend):
    sdk, http = sdk_for(app), app.test_client()
    fail_backend(sdk, backend, BREAKER_THRESHOLD)
    assert_fails_fast(app, backend, sdk)
    app.extensions["backends"].all[0].breaker.reset_seconds = 0.2
    wait_until(lambda: breaker_state(http)[0] == 200, "the pause to end", timeout=2)
    trial = create(sdk, input="are you back?")
    assert trial.response.output_text == DEFAULT_TEXT
    assert breaker_state(http) == (
        200,
        {"enabled": True, "is_open": False, "consecutive_failures": 0},
    )
    assert create(sdk, input="and again").response.status == "completed"


def test_breaker_pause_is_thirty_seconds_and_a_failed_trial_reopens_it(clocked_app, backend):
    app, clock = clocked_app
    sdk = sdk_for(app)
    fail_backend(sdk, backend, BREAKER_THRESHOLD)
    clock.now += DEFAULT_RESET_SECONDS - 0.1
    assert_fails_fast(app, backend, sdk)
    clock.now += 0.1
    fail_backend(sdk, backend, 1)  # the trial reached the backend, and failed
    assert_fails_fast(app, backend, sdk)
    assert breaker_state(app.test_client())[1]["is_open"] is True


def test_only_the_trial_goes_through_while_it_is_in_flight(clocked_app, backend):
    app, clock = clocked_app
    fail_backend(sdk_for(app), backend, BREAKER_THRESHOLD)
    clock.now += DEFAULT_RESET_SECONDS
    backend.enqueue(fb.slow_first_byte(0.5, fb.text(ANSWER)))
    trial: dict[str, Any] = {}
    with live(app) as gateway:
        runner = threading.Thread(
            target=lambda: trial.update(done=create(gateway.sdk, input="trial"))
        )
        runner.start()
        assert backend.wait_for_requests(BREAKER_THRESHOLD + 1, 2)
        assert_fails_fast(app, backend, gateway.sdk)
        runner.join(10)
        assert trial["done"].response.output_text == ANSWER
        assert create(gateway.sdk, input="after").response.output_text == DEFAULT_TEXT


def test_rate_limits_do_not_open_the_breaker(app, backend):
    sdk, http = sdk_for(app), app.test_client()
    for _ in range(BREAKER_THRESHOLD + 1):
        backend.enqueue(fb.error(429, RATE_LIMITED))
        with pytest.raises(openai.RateLimitError):
            sdk.responses.create(model=MODEL, input="x")
    assert breaker_state(http) == (
        200,
        {"enabled": True, "is_open": False, "consecutive_failures": 0},
    )


def test_a_backend_that_is_down_opens_the_breaker(make_app, backend):
    app = make_app(backends=[{"base_url": f"http://127.0.0.1:{closed_port()}/v1"}])
    sdk = sdk_for(app)
    for _ in range(BREAKER_THRESHOLD):
        with pytest.raises(openai.APIStatusError) as caught:
            sdk.responses.create(model=MODEL, input="x")
        assert assert_openai_error(caught.value, 503)["code"] == "backend_unavailable"
    assert_fails_fast(app, backend, sdk)
    assert breaker_state(app.test_client())[0] == 503


# --- backend errors passed on, bounded reads ----------------------------------


@pytest.mark.parametrize("retry_after", ["7", "Wed, 21 Oct 2026 07:28:00 GMT"])
def test_rate_limit_is_passed_on_with_retry_after(app, backend, retry_after):
    backend.enqueue(fb.error(429, RATE_LIMITED, headers={"Retry-After": retry_after}))
    with live(app) as gateway, pytest.raises(openai.RateLimitError) as caught:
        gateway.sdk.responses.create(model=MODEL, input="x")
    error = assert_openai_error(caught.value, 429)
    assert caught.value.response.headers["retry-after"] == retry_after
    assert error["type"] == "rate_limit_error" and error["message"] == "Slow down."
    assert_nothing_stored(app)


def sse_line(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    """One Chat completion chunk as an SSE `data:` line."""
    chunk = {
        "id": "chatcmpl-big",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


@pytest.mark.parametrize("size", [MAX_SSE_LINE + 1024, 4 * MAX_SSE_LINE], ids=["just-over", "4MB"])
def test_backend_sse_line_over_one_megabyte_fails_the_stream(app, backend, size):
    huge = sse_line({"content": "x" * size})
    body = sse_line({"role": "assistant", "content": "Hi"}) + huge + b"data: [DONE]\n\n"
    backend.enqueue(fb.raw(200, body, "text/event-stream"))
    with live(app) as gateway:
        streamed = timed_stream(gateway.sdk, input="hi")
        stored = retrieve_body(gateway.sdk, streamed.response.id)
        after = create(gateway.sdk, input="still serving?")
        health = requests.get(gateway.root + "/health", timeout=5)
    failed = streamed.response
    assert failed.status == "failed" and failed.error.code == "server_error"
    assert "longer than" in failed.error.message
    assert failed.output_text == "Hi"
    assert stored["status"] == "failed"
    assert after.response.output_text == DEFAULT_TEXT
    assert health.status_code == 200


def test_backend_sse_line_just_under_one_megabyte_is_read(app, backend):
    content = "y" * (MAX_SSE_LINE - 4096)
    body = sse_line({"role": "assistant", "content": content}) + sse_line({}, "stop")
    backend.enqueue(fb.raw(200, body + b"data: [DONE]\n\n", "text/event-stream"))
    with live(app) as gateway:
        streamed = timed_stream(gateway.sdk, input="hi")
    assert streamed.response.status == "completed"
    assert streamed.response.output_text == content


# --- limits and input hygiene -------------------------------------------------


def test_body_over_max_body_bytes_is_a_413(make_app, backend):
    app = make_app(max_body_bytes=4096)
    sdk = sdk_for(app)
    error = assert_refused(
        app, backend, lambda: sdk.responses.create(model=MODEL, input="x" * 5000), 413
    )
    assert error["code"] == "request_too_large" and error["type"] == "invalid_request_error"
    assert create(sdk, input="x" * 3000).response.status == "completed"


def post_chunked(url: str, body: dict[str, Any]) -> requests.Response:
    """POST a JSON body with `Transfer-Encoding: chunked` (no Content-Length)."""
    payload = json.dumps(body).encode()
    pieces = (payload[i : i + 1024] for i in range(0, len(payload), 1024))
    return requests.post(url + "/responses", data=pieces, timeout=10)


def test_chunked_body_over_max_body_bytes_is_a_413(make_app, backend):
    app = make_app(max_body_bytes=4096)
    with live(app) as gateway:
        small = post_chunked(gateway.url, {"model": MODEL, "input": "x" * 2000})
        assert small.status_code == 200, small.text
        backend.reset()
        reply = post_chunked(gateway.url, {"model": MODEL, "input": "x" * 8000})
    assert reply.status_code == 413, reply.text
    assert reply.json()["error"]["code"] == "request_too_large"
    assert not backend.chat_requests()
    assert stored_count(app, "responses") == 1  # the small one only


def test_default_body_limit_is_ten_megabytes(app, backend):
    sdk = sdk_for(app)
    too_big = "x" * (10 * 1024 * 1024)
    assert_refused(app, backend, lambda: sdk.responses.create(model=MODEL, input=too_big), 413)


@pytest.mark.parametrize(
    "model",
    ["m" * 300, "fake model", "fake-model\n", "fake\x00model"],
    ids=["300-chars", "space", "newline", "nul"],
)
def test_bad_model_names_are_refused(app, backend, model):
    sdk = sdk_for(app)
    error = assert_refused(app, backend, lambda: sdk.responses.create(model=model, input="x"), 400)
    assert error["param"] == "model"


def test_oversized_authorization_header_is_refused(app, backend):
    sdk = sdk_for(app)
    headers = {"Authorization": "Bearer " + "k" * 5000}
    error = assert_refused(
        app,
        backend,
        lambda: sdk.responses.create(model=MODEL, input="x", extra_headers=headers),
        400,
    )
    assert error["code"] == "invalid_header"


# --- WebSocket refusal --------------------------------------------------------

WEBSOCKET_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


def test_websocket_upgrade_is_refused_at_once_with_a_404(app, backend):
    with live(app) as gateway:
        started = time.monotonic()
        reply = requests.get(gateway.url + "/responses", headers=WEBSOCKET_HEADERS, timeout=5)
        elapsed = time.monotonic() - started
    assert reply.status_code == 404 and elapsed < 1.0
    assert reply.headers["content-type"].startswith("application/json")
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "websocket_not_supported"
    assert error["type"] == "invalid_request_error"
    assert not backend.requests
    assert_nothing_stored(app)


def test_websocket_upgrade_on_a_post_is_refused_too(app, backend):
    sdk = sdk_for(app)
    error = assert_refused(
        app,
        backend,
        lambda: sdk.responses.create(
            model=MODEL, input="x", extra_headers={"Upgrade": "websocket", "Connection": "Upgrade"}
        ),
        404,
    )
    assert error["code"] == "websocket_not_supported"


# --- the store failing ----------------------------------------------------------


def test_a_failed_write_is_a_503_and_leaves_no_half_written_response(make_app, backend):
    app = make_app()
    http = app.test_client()
    with db.connection_context():
        db.execute_sql("DROP TABLE items")  # the response row inserts, its items cannot
    reply = http.post("/v1/responses", json={"model": MODEL, "input": "x"})
    assert reply.status_code == 503
    assert reply.json["error"]["code"] == "store_unavailable"
    with db.connection_context():
        assert StoredResponse.select().count() == 0  # the transaction was rolled back
    assert http.get("/health").status_code == 200


class _WriteLock:
    """Another process's connection holding the store's write lock on responses."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.postgres, self.dsn = settings["store_type"] == "postgres", settings["store_dsn"]
        if self.postgres:
            self.connection = psycopg.connect(settings["store_dsn"])
            self.connection.execute("LOCK TABLE responses IN EXCLUSIVE MODE")
        else:
            self.connection = sqlite3.connect(settings["store_dsn"], isolation_level=None)
            self.connection.execute("BEGIN IMMEDIATE")

    def writers_waiting(self) -> int:
        """The gateway's writes waiting for this lock, as the database (or gateway) counts them."""
        if self.postgres:
            query = (
                "SELECT count(*) FROM pg_locks"
                " WHERE relation = 'responses'::regclass AND NOT granted"
            )
            with psycopg.connect(self.dsn, autocommit=True) as observer:
                return observer.execute(query).fetchone()[0]
        # SQLite has no lock table: each waiting write counts itself in this gauge.
        return int(REGISTRY.get_sample_value("gateway_store_writes_waiting") or 0)

    def release(self) -> None:
        self.connection.rollback()
        self.connection.close()


def test_writes_waiting_for_the_lock_do_not_run_out_of_connections(
    make_app, backend, store_settings
):
    # More requests than the pool has connections wait for the lock at once,
    # each holding its connection.
    app = make_app(**store_settings)
    waiting = store.POOL_SIZE + 16
    with db.connection_context():
        stored_before = StoredResponse.select().count()  # the PostgreSQL database is shared
    lock = _WriteLock(store_settings)
    statuses: list[int] = []

    def create_one() -> None:
        reply = app.test_client().post("/v1/responses", json={"model": MODEL, "input": "x"})
        statuses.append(reply.status_code)

    threads = [threading.Thread(target=create_one) for _ in range(waiting)]
    for thread in threads:
        thread.start()
    assert backend.wait_for_requests(waiting, timeout=10)
    # As many wait at the lock as the pool has connections; the rest wait for one of them.
    wait_until(lambda: lock.writers_waiting() == store.POOL_SIZE, "the pool's writes to wait")
    lock.release()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [200] * waiting
    with db.connection_context():
        assert StoredResponse.select().count() == stored_before + waiting
