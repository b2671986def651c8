"""Operating under faults: keep-alive, disconnects, background mode, the circuit
breaker, WebSocket refusal, request logs and metrics, key masking.

Tests that need a real socket (disconnects, timing) serve the app in a thread.
"""

from __future__ import annotations

import io
import json
import logging
import time
from typing import Any

import openai
import pytest
import requests

from app.logs import MaskingFilter, mask_key
from app.store.models import StoredResponse, db
from tests.conftest import TEST_KEY, sdk_for
from tests.events import assert_valid_event_stream, validate_event
from tests.fakebackend import error, raw, slow_first_byte, text
from tests.integration.helpers import serve_in_thread, sse_events

MODEL = "fake-model"


def post_stream(url: str, **body: Any) -> list[dict[str, Any]]:
    with requests.post(
        url + "/responses", json={"model": MODEL, "stream": True, **body}, stream=True, timeout=30
    ) as reply:
        assert reply.status_code == 200, reply.text
        return sse_events(reply.iter_lines(decode_unicode=True))


def test_keepalive_events_flow_while_the_backend_is_silent(make_app, backend):
    app = make_app(keepalive_seconds=0.2)
    backend.enqueue(slow_first_byte(1.0, text("Finally.")))
    with serve_in_thread(app) as url:
        events = post_stream(url, input="hi")
    final = assert_valid_event_stream(events)
    assert final.output_text == "Finally."
    first_delta = next(i for i, e in enumerate(events) if e["type"] == "response.output_text.delta")
    assert [e["type"] for e in events[:first_delta]].count("response.in_progress") >= 3


def test_sdk_stream_helper_handles_keepalive_events(make_app, backend):
    app = make_app(keepalive_seconds=0.1)
    backend.enqueue(slow_first_byte(0.5, text("Through the helper.")))
    with sdk_for(app).responses.stream(model=MODEL, input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == "Through the helper."


def test_error_after_the_keepalive_interval_ends_in_response_failed(make_app, backend):
    app = make_app(keepalive_seconds=0.1)
    backend.enqueue(slow_first_byte(0.5, error(500)))
    with serve_in_thread(app) as url:
        events = post_stream(url, input="hi")
    final = assert_valid_event_stream(events)
    assert final.status == "failed" and final.error.message


def test_immediate_backend_error_is_an_http_error(make_app, backend):
    backend.enqueue(error(503))
    with pytest.raises(openai.InternalServerError) as caught:
        sdk_for(make_app()).responses.create(model=MODEL, input="hi", stream=True)
    assert caught.value.status_code == 503


def test_client_disconnect_closes_the_backend_call_and_stores_what_was_said(make_app, backend):
    app = make_app()
    backend.enqueue(text("word " * 200, chunk_size=5, delay=0.05))
    with serve_in_thread(app) as url:
        reply = requests.post(
            url + "/responses", json={"model": MODEL, "input": "hi", "stream": True}, stream=True
        )
        lines = reply.iter_lines(decode_unicode=True)
        created = None
        for line in lines:
            if line.startswith("data: ") and '"response.output_text.delta"' in line:
                break
            if line.startswith("data: ") and created is None:
                created = json.loads(line[6:])["response"]["id"]
        reply.close()
        assert backend.wait_for_disconnect(5), "the backend call was not closed"
        stored = None
        for _ in range(50):
            stored = requests.get(f"{url}/responses/{created}").json()
            if stored.get("status") == "cancelled":
                break
            time.sleep(0.1)
        assert stored["status"] == "cancelled"
        assert stored["output"][0]["content"][0]["text"].startswith("word")
        backend.enqueue(text("still serving"))
        assert requests.post(url + "/responses", json={"model": MODEL, "input": "x"}).ok


def test_a_hung_backend_does_not_block_other_requests(make_app, backend):
    from tests.fakebackend import hang

    app = make_app(backends=[{"base_url": backend.base_url, "read_timeout": 3}])
    backend.enqueue(hang(3))
    with serve_in_thread(app) as url:
        import threading

        slow = threading.Thread(
            target=requests.post,
            args=(url + "/responses",),
            kwargs={"json": {"model": MODEL, "input": "a"}},
        )
        slow.start()
        assert backend.wait_for_requests(1, 2)
        started = time.monotonic()
        assert requests.post(url + "/responses", json={"model": MODEL, "input": "b"}).ok
        assert time.monotonic() - started < 1.5
        slow.join(10)


def test_breaker_opens_fails_fast_and_recovers(make_app, backend):
    app = make_app()
    http = app.test_client()
    for _ in range(5):
        backend.enqueue(error(500))
        assert http.post("/v1/responses", json={"model": MODEL, "input": "x"}).status_code == 500
    sent = len(backend.chat_requests())
    fast = http.post("/v1/responses", json={"model": MODEL, "input": "x"})
    assert fast.status_code == 503 and fast.json["error"]["code"] == "circuit_open"
    assert len(backend.chat_requests()) == sent
    health = http.get("/health")
    assert health.status_code == 503
    assert health.json["backends"][0]["circuit_breaker"]["is_open"] is True
    app.extensions["backends"].all[0].breaker.reset_seconds = 0.05
    time.sleep(0.1)
    assert http.post("/v1/responses", json={"model": MODEL, "input": "x"}).status_code == 200
    assert http.get("/health").json["backends"][0]["circuit_breaker"] == {
        "enabled": True,
        "is_open": False,
        "consecutive_failures": 0,
    }


def test_rate_limit_passes_retry_after_on(make_app, backend):
    backend.enqueue(error(429, headers={"Retry-After": "7"}))
    reply = make_app().test_client().post("/v1/responses", json={"model": MODEL, "input": "x"})
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "7"
    assert reply.json["error"]["type"] == "rate_limit_error"


def test_oversized_backend_sse_line_fails_the_stream_cleanly(make_app, backend):
    huge = (
        b'data: {"choices": [{"index": 0, "delta": {"content": "'
        + b"x" * (1100 * 1024)
        + b'"}}]}\n\n'
    )
    backend.enqueue(raw(200, huge, content_type="text/event-stream"))
    with serve_in_thread(make_app()) as url:
        events = post_stream(url, input="hi")
        final = assert_valid_event_stream(events)
        assert final.status == "failed"
        assert requests.get(url.removesuffix("/v1") + "/health").ok


def test_websocket_upgrade_is_refused_at_once(make_app, backend):
    reply = (
        make_app()
        .test_client()
        .get("/v1/responses", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    )
    assert reply.status_code == 404
    assert reply.json["error"]["code"] == "websocket_not_supported"
    assert not backend.requests


def wait_for_status(client: openai.OpenAI, response_id: str, statuses: set[str]) -> Any:
    for _ in range(100):
        response = client.responses.retrieve(response_id)
        if response.status in statuses:
            return response
        time.sleep(0.05)
    raise AssertionError(f"{response_id} stayed {response.status}")


def test_background_lifecycle_poll_and_resume(make_app, store_settings, backend):
    app = make_app(**store_settings)
    client = sdk_for(app)
    backend.enqueue(text("Done in the background.", delay=0.02))
    queued = client.responses.create(model=MODEL, input="work", background=True)
    assert queued.status == "queued" and queued.background is True
    done = wait_for_status(client, queued.id, {"completed"})
    assert done.output_text == "Done in the background."
    with (
        serve_in_thread(app) as url,
        requests.get(
            f"{url}/responses/{queued.id}?stream=true&starting_after=3", stream=True
        ) as reply,
    ):
        events = sse_events(reply.iter_lines(decode_unicode=True))
    assert [event["sequence_number"] for event in events] == list(range(4, 4 + len(events)))
    assert events[-1]["type"] == "response.completed"
    for event in events:
        validate_event(event)


def test_background_stream_is_live(make_app, backend):
    app = make_app()
    backend.enqueue(text("Live.", delay=0.01))
    with serve_in_thread(app) as url:
        events = post_stream(url, input="hi", background=True)
    assert assert_valid_event_stream(events).output_text == "Live."


def test_background_cancel_stops_the_backend_call(make_app, backend):
    app = make_app()
    client = sdk_for(app)
    backend.enqueue(text("long " * 100, chunk_size=5, delay=0.05))
    queued = client.responses.create(model=MODEL, input="work", background=True)
    wait_for_status(client, queued.id, {"in_progress"})
    time.sleep(0.2)
    assert client.responses.cancel(queued.id).status == "cancelled"
    assert backend.wait_for_disconnect(5)
    with (
        serve_in_thread(app) as url,
        requests.get(f"{url}/responses/{queued.id}?stream=true", stream=True) as reply,
    ):
        events = sse_events(reply.iter_lines(decode_unicode=True))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["status"] == "cancelled"


@pytest.mark.parametrize(
    ("call", "status"),
    [
        (lambda http, rid: http.post("/v1/responses/resp_nope/cancel"), 404),
        (lambda http, rid: http.post(f"/v1/responses/{rid}/cancel"), 400),
        (lambda http, rid: http.get(f"/v1/responses/{rid}?stream=true"), 400),
        (
            lambda http, rid: http.post(
                "/v1/responses",
                json={"model": MODEL, "input": "x", "background": True, "store": False},
            ),
            400,
        ),
    ],
)
def test_background_misuse_is_refused(make_app, backend, call, status):
    http = make_app().test_client()
    plain = http.post("/v1/responses", json={"model": MODEL, "input": "x"}).json["id"]
    reply = call(http, plain)
    assert reply.status_code == status and set(reply.json) == {"error"}


def test_one_request_line_per_request_with_tokens(make_app, backend, caplog):
    app = make_app()
    with caplog.at_level(logging.INFO, logger="gateway.requests"), serve_in_thread(app) as url:
        requests.post(url + "/responses", json={"model": MODEL, "input": "x"})
        post_stream(url, input="y")
    lines = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("request_completed")
    ]
    assert len(lines) == 2
    assert "stream=False" in lines[0] and "stream=True" in lines[1]
    for line in lines:
        assert "model=fake-model" in line and "status=200" in line and "input_tokens=10" in line


def test_json_logs_parse(make_app, backend, caplog):
    app = make_app(json_logs=True)
    with caplog.at_level(logging.INFO, logger="gateway.requests"), serve_in_thread(app) as url:
        requests.post(url + "/responses", json={"model": MODEL, "input": "x"})
    record = json.loads(
        next(r.getMessage() for r in caplog.records if r.name == "gateway.requests")
    )
    assert record["event"] == "request_completed" and record["output_tokens"] > 0


def test_metrics_count_requests_tokens_and_errors(make_app, backend):
    http = make_app().test_client()
    http.post("/v1/responses", json={"model": MODEL, "input": "x"})
    backend.enqueue(error(500))
    http.post("/v1/responses", json={"model": MODEL, "input": "x"})
    exposition = http.get("/metrics").get_data(as_text=True)
    for name in (
        "gateway_requests_total",
        "gateway_request_duration_seconds_bucket",
        "gateway_tokens_total",
        "gateway_active_streams",
        "gateway_backend_errors_total",
    ):
        assert name in exposition
    assert 'gateway_backend_errors_total{backend="default",kind="http_500"}' in exposition


def test_keys_are_masked_by_the_log_filter():
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("app.masking-test")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("forwarding Authorization: Bearer %s", TEST_KEY)
        logger.warning("config api_key=%s", TEST_KEY)
    finally:
        logger.removeHandler(handler)
    text_out = output.getvalue()
    assert TEST_KEY not in text_out
    assert text_out.count(mask_key(TEST_KEY)) == 2
    assert mask_key(TEST_KEY) == TEST_KEY[:6] + "..." + TEST_KEY[-4:]


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
