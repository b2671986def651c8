"""Observability: one request_completed line per request (plain or JSON), written when
the request is really over; Prometheus metrics at /metrics; keys kept out of the
logs and the database.

The gateway is served on a real socket (`ops_helpers.live`), so a line or a
metric is only counted once the server has finished the response, as in
production. Metrics are compared before and after (the registry is shared by
every test in the process).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import openai
import pytest
import requests

from app.logs import mask_key
from tests import fakebackend as fb
from tests.integration.helpers import DEFAULT_TEXT, MODEL, create, store_bytes
from tests.integration.ops_helpers import (
    Samples,
    abandon_stream,
    gateway_log_output,
    grown,
    iter_events,
    live,
    parse_request_line,
    request_lines,
    sample,
    scrape,
    timed_stream,
    wait_for_status,
    wait_until,
)

ANSWER = "Counted, timed and logged."
ANSWER_TOKENS = len(ANSWER.split())
DEFAULT_TOKENS = len(DEFAULT_TEXT.split())
PROMPT_TOKENS = 10  # what the fake backend reports
LIVE_KEY = "sk-live-7Hq2XbV9mKp4Lr8sTz3WcNd6"
ROUTE = "/v1/responses"
LINE_FIELDS = {
    "request_id",
    "method",
    "route",
    "model",
    "status",
    "stream",
    "outcome",
    "duration_ms",
    "input_tokens",
    "output_tokens",
}


@pytest.fixture
def log_records(caplog: pytest.LogCaptureFixture) -> Any:
    """A reader of the records captured so far in the test (every logger, INFO up)."""
    caplog.set_level(logging.INFO)
    return lambda: caplog.records


def next_line(log_records: Any, count: int) -> dict[str, str]:
    """Wait for the `count`-th request line; return it parsed."""
    wait_until(lambda: len(request_lines(log_records())) >= count, f"request line {count}")
    lines = request_lines(log_records())
    assert len(lines) == count, f"more than one line per request: {lines}"
    fields = parse_request_line(lines[-1])
    assert set(fields) == LINE_FIELDS, fields
    assert float(fields["duration_ms"]) > 0
    return fields


# --- the request log ------------------------------------------------------------


def test_one_request_line_per_request_with_its_facts(app, backend, log_records):
    with live(app) as gateway:
        create(gateway.sdk, input="json")
        json_line = next_line(log_records, 1)
        backend.enqueue(fb.text(ANSWER))
        timed_stream(gateway.sdk, input="stream")
        stream_line = next_line(log_records, 2)
        backend.enqueue(fb.error(500))
        with pytest.raises(openai.InternalServerError):
            gateway.sdk.responses.create(model=MODEL, input="fails")
        error_line = next_line(log_records, 3)
        with pytest.raises(openai.NotFoundError):
            gateway.sdk.responses.retrieve("resp_unknown")
        missing_line = next_line(log_records, 4)
    request_ids = [
        line["request_id"] for line in (json_line, stream_line, error_line, missing_line)
    ]
    assert all(rid.startswith("req_") for rid in request_ids) and len(set(request_ids)) == 4
    assert json_line | {"duration_ms": "-", "request_id": "-"} == {
        "request_id": "-",
        "method": "POST",
        "route": ROUTE,
        "model": MODEL,
        "status": "200",
        "stream": "False",
        "outcome": "completed",
        "duration_ms": "-",
        "input_tokens": str(PROMPT_TOKENS),
        "output_tokens": str(DEFAULT_TOKENS),
    }
    assert stream_line["stream"] == "True" and stream_line["status"] == "200"
    assert stream_line["outcome"] == "completed"
    assert (stream_line["input_tokens"], stream_line["output_tokens"]) == (
        str(PROMPT_TOKENS),
        str(ANSWER_TOKENS),
    )
    assert (error_line["status"], error_line["model"], error_line["output_tokens"]) == (
        "500",
        MODEL,
        "0",
    )
    assert (missing_line["method"], missing_line["status"]) == ("GET", "404")
    assert missing_line["route"] == ROUTE + "/<response_id>"


def test_stream_line_is_written_when_the_stream_ends(app, backend, log_records):
    chunks, delay = 6, 0.1
    backend.enqueue(fb.text(ANSWER, chunk_size=len(ANSWER) // chunks + 1, delay=delay))
    with live(app) as gateway:
        with gateway.sdk.responses.with_streaming_response.create(
            model=MODEL, input="hi", stream=True
        ) as raw:
            events = iter_events(raw.iter_lines())
            assert next(events)["type"] == "response.created"
            assert not request_lines(log_records()), "logged when the headers left"
            rest = list(events)
        assert rest[-1]["type"] == "response.completed"
        line = next_line(log_records, 1)
    assert float(line["duration_ms"]) >= (chunks - 1) * delay * 1000 * 0.9
    assert line["output_tokens"] == str(ANSWER_TOKENS) and line["outcome"] == "completed"


def test_a_client_that_went_away_is_logged_as_disconnected(app, backend, log_records):
    backend.enqueue(fb.text("word " * 200, chunk_size=5, delay=0.05))
    with live(app) as gateway:
        abandon_stream(gateway.sdk, "response.output_text.delta", input="hi")
        line = next_line(log_records, 1)
    assert line["outcome"] == "disconnected"
    assert (line["stream"], line["status"], line["model"]) == ("True", "200", MODEL)


def test_json_request_lines_are_json_objects(make_app, backend, log_records):
    app = make_app(json_logs=True)
    with live(app) as gateway:
        create(gateway.sdk, input="json")
        timed_stream(gateway.sdk, input="stream")
        wait_until(lambda: len(request_lines(log_records())) == 2, "two request lines")
    for message, streamed in zip(request_lines(log_records()), (False, True), strict=True):
        line = json.loads(message)
        assert line["event"] == "request_completed"
        assert set(line) == LINE_FIELDS | {"event"}
        assert (line["model"], line["status"], line["stream"]) == (MODEL, 200, streamed)
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
        assert (line["input_tokens"], line["output_tokens"]) == (PROMPT_TOKENS, DEFAULT_TOKENS)


def test_json_log_lines_as_written_parse_as_json(make_app, backend):
    app = make_app(json_logs=True)
    with gateway_log_output() as output, live(app) as gateway:
        create(gateway.sdk, input="json")
        wait_until(lambda: "request_completed" in output.getvalue(), "the request line")
    (line,) = [text for text in output.getvalue().splitlines() if "request_completed" in text]
    try:
        parsed = json.loads(line)
    except ValueError:
        pytest.fail(f"with json_logs the gateway writes a line that is not JSON: {line!r}")
    assert parsed["event"] == "request_completed"


# --- /metrics -------------------------------------------------------------------


def counted(before: Samples, after: Samples, ok: int, failed: int) -> Samples | None:
    """`after`, once it counts `ok` more 200s and `failed` more 500s than `before`."""
    statuses = {"200": ok, "500": failed}
    done = all(
        grown(before, after, "gateway_requests_total", route=ROUTE, model=MODEL, status=status)
        == count
        for status, count in statuses.items()
    )
    return after if done else None


def test_metrics_count_requests_latency_tokens_and_backend_errors(app, backend):
    first_byte = 0.3
    with live(app) as gateway:
        before = scrape(gateway.root)
        create(gateway.sdk, input="json")
        backend.enqueue(fb.slow_first_byte(first_byte, fb.text(ANSWER)))
        timed_stream(gateway.sdk, input="stream")
        backend.enqueue(fb.error(500))
        with pytest.raises(openai.InternalServerError):
            gateway.sdk.responses.create(model=MODEL, input="fails")
        after = wait_until(
            lambda: counted(before, scrape(gateway.root), ok=2, failed=1),
            "the three requests to be counted",
        )

    def growth(name: str, **labels: str) -> float:
        return grown(before, after, name, **labels)

    requests_ok = growth("gateway_requests_total", route=ROUTE, model=MODEL, status="200")
    assert requests_ok == 2  # and one 500, waited for above
    latency = "gateway_request_duration_seconds"
    assert growth(f"{latency}_count", route=ROUTE, stream="false") == 2
    assert growth(f"{latency}_count", route=ROUTE, stream="true") == 1
    assert growth(f"{latency}_sum", route=ROUTE, stream="true") >= first_byte
    first_token = "gateway_time_to_first_token_seconds"
    assert growth(f"{first_token}_count", model=MODEL) == 1
    ttft = growth(f"{first_token}_sum", model=MODEL)
    assert first_byte <= ttft <= growth(f"{latency}_sum", route=ROUTE, stream="true")
    assert growth("gateway_tokens_total", model=MODEL, direction="input") == 2 * PROMPT_TOKENS
    assert growth("gateway_tokens_total", model=MODEL, direction="output") == (
        DEFAULT_TOKENS + ANSWER_TOKENS
    )
    assert growth("gateway_backend_errors_total", backend="default", kind="http_500") == 1
    assert sample(after, "gateway_active_streams") == sample(before, "gateway_active_streams")


def all_counted(before: Samples, after: Samples, requests: int) -> Samples | None:
    """`after`, once it counts `requests` more creations (any model, any status) than `before`."""

    def total(samples: Samples) -> float:
        return sum(
            value
            for (name, labels), value in samples.items()
            if name == "gateway_requests_total" and ("route", ROUTE) in labels
        )

    return after if total(after) - total(before) == requests else None


def test_the_model_label_takes_no_name_a_client_makes_up(make_app, backend):
    app = make_app(
        backends=[
            {"name": "listed", "base_url": backend.base_url, "models": ["listed-model"]},
            {"name": "any", "base_url": backend.base_url},
        ]
    )
    made_up = [f"made-up-{n}" for n in range(5)]
    with live(app) as gateway:
        before = scrape(gateway.root)
        for model in made_up:  # the catch-all backend refuses each of them
            backend.enqueue(fb.error(404, {"error": {"message": "no such model"}}))
            with pytest.raises(openai.NotFoundError):
                gateway.sdk.responses.create(model=model, input="x")
        create(gateway.sdk, model="listed-model", input="x")
        create(gateway.sdk, model="served-model", input="x")  # the catch-all backend serves it
        after = wait_until(
            lambda: all_counted(before, scrape(gateway.root), 7), "the seven requests to be counted"
        )
    labels = {dict(labels)["model"] for name, labels in after if name == "gateway_requests_total"}
    assert not labels & set(made_up)
    assert grown(before, after, "gateway_requests_total", route=ROUTE, model="other", status="404")
    assert {"listed-model", "served-model"} <= labels


def test_active_streams_gauge_counts_open_streams(app, backend):
    backend.enqueue(fb.text(ANSWER, chunk_size=4, delay=0.1))
    with live(app) as gateway:
        idle = sample(scrape(gateway.root), "gateway_active_streams")
        with gateway.sdk.responses.with_streaming_response.create(
            model=MODEL, input="hi", stream=True
        ) as raw:
            events = iter_events(raw.iter_lines())
            next(events)
            assert sample(scrape(gateway.root), "gateway_active_streams") == idle + 1
            list(events)
        wait_until(
            lambda: sample(scrape(gateway.root), "gateway_active_streams") == idle,
            "the stream to be counted as over",
        )


def test_circuit_state_is_a_metric(app, backend):
    breaker = app.extensions["backends"].all[0].breaker
    with live(app) as gateway:
        for _ in range(breaker.failure_threshold):
            backend.enqueue(fb.error(500))
            with pytest.raises(openai.InternalServerError):
                gateway.sdk.responses.create(model=MODEL, input="x")
        assert sample(scrape(gateway.root), "gateway_circuit_open", backend="default") == 1
        breaker.reset_seconds = 0.0
        create(gateway.sdk, input="trial")
        assert sample(scrape(gateway.root), "gateway_circuit_open", backend="default") == 0


# --- keys -------------------------------------------------------------------------


def exercise_with_key(gateway: Any, backend: fb.FakeBackend) -> None:
    """Requests of every kind, with the client's live key: JSON, stream, faults, background."""
    client = gateway.client(LIVE_KEY)
    create(client, input="json")
    timed_stream(client, input="stream")
    backend.enqueue(fb.error(500))
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model=MODEL, input="fails")
    backend.enqueue(fb.cut())
    timed_stream(client, input="cut short")
    backend.enqueue(fb.text("word " * 100, chunk_size=5, delay=0.05))
    abandon_stream(client, "response.output_text.delta", input="leaves")
    background = create(client, input="later", background=True).response
    wait_for_status(client, background.id, "completed")
    requests.get(
        gateway.url + "/responses/resp_unknown",
        headers={"Authorization": f"Bearer {LIVE_KEY}"},
        timeout=5,
    )


def assert_key_absent(text: str, where: str) -> None:
    """Neither the key nor its secret middle appears; only its 6/4 mask may."""
    assert LIVE_KEY not in text, f"the client's key is in {where}"
    assert LIVE_KEY[6:-4] not in text, f"the middle of the client's key is in {where}"
    shown = text.count(LIVE_KEY[:6])
    assert shown == text.count(mask_key(LIVE_KEY)), f"a key is shown unmasked in {where}"


def test_client_key_never_reaches_the_logs_or_the_database(make_app, backend, caplog):
    app = make_app(log_level="DEBUG")
    caplog.set_level(logging.DEBUG)
    with gateway_log_output() as output, live(app) as gateway:
        exercise_with_key(gateway, backend)
        wait_until(  # the last request's line, and the abandoned stream's
            lambda: "status=404" in output.getvalue() and "disconnected" in output.getvalue(),
            "the last request lines",
        )
    sent = {request.headers.get("authorization") for request in backend.requests}
    assert sent == {f"Bearer {LIVE_KEY}"}, "the key was not forwarded (the test would be void)"
    assert output.getvalue(), "the gateway wrote no log at all"
    assert_key_absent(output.getvalue(), "the gateway's log output")
    assert_key_absent(caplog.text, "the captured log records")
    assert_key_absent(store_bytes(app).decode("utf-8", errors="replace"), "the database")


def test_the_gateway_log_handler_masks_keys_from_any_logger(app):
    with gateway_log_output() as output:
        logging.getLogger("urllib3.connectionpool").warning("Authorization: Bearer %s", LIVE_KEY)
        logging.getLogger("app.backends").error("backend refused api_key=%s", LIVE_KEY)
    assert output.getvalue().count(mask_key(LIVE_KEY)) == 2
    assert mask_key(LIVE_KEY) == LIVE_KEY[:6] + "..." + LIVE_KEY[-4:]
    assert_key_absent(output.getvalue(), "the gateway's log output")
