"""Helpers of the operations tests: a gateway on a real socket, timed streams, waits,
metrics and request-log readers.

`live(app)` serves the app on a loopback port (werkzeug, threaded) and hands
back the real openai SDK pointed at it, so disconnects and timing are real.
Every event read here is checked against the openai types; whole streams go
through `tests/events.py`.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
import requests
from flask import Flask
from openai.types.responses import Response
from prometheus_client.parser import text_string_to_metric_families

from app.logs import MaskingFilter
from tests.conftest import TEST_KEY
from tests.events import validate_event
from tests.integration.helpers import MODEL, assert_valid_stream, iter_events, serve_in_thread

T = TypeVar("T")
WAIT_SECONDS = 10.0
POLL_SECONDS = 0.02
CLIENT_TIMEOUT = 30.0
REQUEST_LOGGER = "gateway.requests"
OPENER_THREAD = "upstream-open"


@dataclass
class Live:
    """A gateway served on a loopback socket: its /v1 URL, its root URL, an SDK client."""

    url: str
    sdk: openai.OpenAI

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    def client(self, key: str) -> openai.OpenAI:
        """Another SDK client of this gateway, with its own API key."""
        return sdk_at(self.url, key)


def sdk_at(url: str, key: str = TEST_KEY) -> openai.OpenAI:
    """The real openai client over HTTP to `url` (no retries: every fault is seen)."""
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=CLIENT_TIMEOUT)


@contextmanager
def live(app: Flask) -> Iterator[Live]:
    """Serve `app` in a thread for the duration of the block."""
    with serve_in_thread(app) as url:
        client = sdk_at(url)
        try:
            yield Live(url, client)
        finally:
            client.close()


@dataclass
class TimedStream:
    """A stream read to its end: every event, when each arrived, and the final response."""

    events: list[dict[str, Any]]
    arrivals: list[float]
    started: float
    response: Response
    headers: Any

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def first(self, event_type: str) -> int:
        """Position of the first event of `event_type`."""
        return self.types.index(event_type)

    def seconds_until(self, position: int) -> float:
        return self.arrivals[position] - self.started


def timed_stream(sdk: openai.OpenAI, **params: Any) -> TimedStream:
    """Create a streamed response; note each event's arrival; check the whole stream."""
    params.setdefault("model", MODEL)
    started = time.monotonic()
    events, arrivals = [], []
    with sdk.responses.with_streaming_response.create(stream=True, **params) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        for event in iter_events(raw.iter_lines()):
            events.append(event)
            arrivals.append(time.monotonic())
    return TimedStream(events, arrivals, started, assert_valid_stream(events), raw.headers)


def abandon_stream(sdk: openai.OpenAI, until: str, **params: Any) -> list[dict[str, Any]]:
    """Read a stream up to the first `until` event, then hang up; return what was read."""
    params.setdefault("model", MODEL)
    seen = []
    with sdk.responses.with_streaming_response.create(stream=True, **params) as raw:
        for event in iter_events(raw.iter_lines()):
            validate_event(event)
            seen.append(event)
            if event["type"] == until:
                break
    assert seen and seen[-1]["type"] == until, f"the stream ended before {until}"
    return seen


def follow(
    sdk: openai.OpenAI, response_id: str, starting_after: int | None = None
) -> list[dict[str, Any]]:
    """GET /v1/responses/{id}?stream=true[&starting_after=N]; every event validated."""
    extra = {} if starting_after is None else {"starting_after": starting_after}
    with sdk.responses.with_streaming_response.retrieve(response_id, stream=True, **extra) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        events = list(iter_events(raw.iter_lines()))
    for event in events:
        validate_event(event)
    return events


def wait_until(check: Callable[[], T], what: str, timeout: float = WAIT_SECONDS) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(POLL_SECONDS)


def retrieve_body(sdk: openai.OpenAI, response_id: str) -> dict[str, Any]:
    """GET /v1/responses/{id}: the raw body, validated as a Response."""
    body = sdk.responses.with_raw_response.retrieve(response_id).http_response.json()
    Response.model_validate(body)
    return body


def wait_for_status(
    sdk: openai.OpenAI, response_id: str, *statuses: str, timeout: float = WAIT_SECONDS
) -> dict[str, Any]:
    """Poll a stored response until its status is one of `statuses`; return its body."""

    def reached() -> dict[str, Any] | None:
        body = retrieve_body(sdk, response_id)
        return body if body["status"] in statuses else None

    return wait_until(reached, f"{response_id} to become {'/'.join(statuses)}", timeout)


def opener_threads() -> int:
    """Live threads still waiting for a backend's headers (real threads under the dev server)."""
    return sum(thread.name == OPENER_THREAD for thread in threading.enumerate())


def no_opener_left(before: int) -> None:
    """Wait until no backend call that is still opening outlives its request."""
    wait_until(lambda: opener_threads() <= before, "the opening backend call to end", timeout=5)


# --- metrics ---------------------------------------------------------------

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(root: str) -> Samples:
    """GET /metrics and parse every sample: (name, labels) -> value."""
    reply = requests.get(root + "/metrics", timeout=CLIENT_TIMEOUT)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain"), reply.headers
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def grown(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much a series grew between two scrapes."""
    return sample(after, name, **labels) - sample(before, name, **labels)


# --- request log -----------------------------------------------------------


@contextmanager
def gateway_log_output() -> Iterator[io.StringIO]:
    """Capture what the gateway's own log handler (on the root logger) writes."""
    handlers = [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler)
        and any(isinstance(f, MaskingFilter) for f in handler.filters)
    ]
    assert handlers, "the gateway installed no log handler (create the app first)"
    buffer = io.StringIO()
    previous = [handler.setStream(buffer) for handler in handlers]
    try:
        yield buffer
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            handler.setStream(stream)


def request_lines(records: list[logging.LogRecord]) -> list[str]:
    """The request_completed messages among captured records, in order."""
    return [
        record.getMessage()
        for record in records
        if record.name == REQUEST_LOGGER and "request_completed" in record.getMessage()
    ]


def parse_request_line(line: str) -> dict[str, str]:
    """`request_completed k=v k=v …` as a dict of strings."""
    name, *pairs = line.split(" ")
    assert name == "request_completed", line
    fields = dict(pair.split("=", 1) for pair in pairs)
    assert len(fields) == len(pairs), f"a field of the request line has no '=': {line}"
    return fields
