"""Shared helpers of the integration tests: the SDK calls, the checks, the store.

Every body and every stream event these helpers hand back has been checked
against the openai SDK's pydantic types. Streams go through
`tests/events.py`'s `assert_valid_event_stream` when that module exists;
without it, a minimal checker here enforces the invariants the tests rely on.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import openai
import pytest
from flask import Flask
from openai.types.responses import Response, ResponseStreamEvent
from werkzeug.serving import make_server

from tests.fakebackend import FakeBackend

try:
    from tests.events import assert_valid_event_stream as _shared_event_check
    from tests.events import validate_event as _shared_validate_event
except ImportError:  # the shared checker is written by another session
    _shared_event_check = _shared_validate_event = None

MODEL = "fake-model"
DEFAULT_TEXT = "Hello from the fake backend."
# The SDK's event union, by `type`: each event is validated by its own class.
EVENT_CLASSES = {
    get_args(member.model_fields["type"].annotation)[0]: member
    for member in get_args(get_args(ResponseStreamEvent)[0])
}
TERMINAL_STATUS = {
    "response.completed": "completed",
    "response.incomplete": "incomplete",
    "response.failed": "failed",
}
# Parameters that only the Responses API has: a Chat backend must never see them.
RESPONSES_ONLY = {
    "input",
    "instructions",
    "include",
    "text",
    "truncation",
    "max_tool_calls",
    "max_output_tokens",
    "reasoning",
    "previous_response_id",
    "conversation",
    "background",
}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather of a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


@dataclass
class Created:
    """A JSON response of POST /v1/responses: validated model, raw body, headers."""

    response: Response
    body: dict[str, Any]
    headers: Any


@dataclass
class Streamed:
    """A streamed response: every event as sent, and the terminal response."""

    events: list[dict[str, Any]]
    response: Response
    headers: Any

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == event_type]


def create(sdk: openai.OpenAI, **params: Any) -> Created:
    """POST /v1/responses (JSON) through the SDK; validate the body."""
    params.setdefault("model", MODEL)
    raw = sdk.responses.with_raw_response.create(**params)
    body = raw.http_response.json()
    return Created(Response.model_validate(body), body, raw.headers)


def stream(sdk: openai.OpenAI, **params: Any) -> Streamed:
    """POST /v1/responses with `stream: true`; read, validate and check every event."""
    params.setdefault("model", MODEL)
    with sdk.responses.with_streaming_response.create(stream=True, **params) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        events = sse_events(raw.iter_lines())
    return Streamed(events, assert_valid_stream(events), raw.headers)


def retrieve(sdk: openai.OpenAI, response_id: str) -> dict[str, Any]:
    """GET /v1/responses/{id}; validate and return the raw body."""
    body = sdk.responses.with_raw_response.retrieve(response_id).http_response.json()
    Response.model_validate(body)
    return body


def sse_events(lines: Iterator[str]) -> list[dict[str, Any]]:
    """Parse `event:`/`data:` frames; each frame's name must match its data's type."""
    events, name = [], None
    for line in lines:
        if line.startswith("event:"):
            name = line[len("event:") :].strip()
        elif line.startswith("data:"):
            event = json.loads(line[len("data:") :])
            assert name in (None, event["type"]), f"frame name {name} != {event['type']}"
            events.append(event)
            name = None
    return events


def validate_event(event: dict[str, Any]) -> None:
    """Check one event against the SDK's type for its `type`."""
    if _shared_validate_event is not None:
        _shared_validate_event(event)
        return
    assert event.get("type") in EVENT_CLASSES, f"unknown event type {event.get('type')!r}"
    EVENT_CLASSES[event["type"]].model_validate(event)


def assert_valid_stream(events: list[dict[str, Any]]) -> Response:
    """Validate every event and the stream's invariants; return the terminal response."""
    if _shared_event_check is not None:
        response = _shared_event_check(events)
        assert response is not None, "the stream was a lone error event"
        return response
    for event in events:
        validate_event(event)
    return _minimal_stream_check(events)


def _minimal_stream_check(events: list[dict[str, Any]]) -> Response:
    """Fallback until tests/events.py exists: order, numbering, lifecycles, final output."""
    types = [event["type"] for event in events]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert types[:2] == ["response.created", "response.in_progress"], types[:2]
    terminals = [i for i, kind in enumerate(types) if kind in TERMINAL_STATUS]
    assert terminals == [len(events) - 1], f"terminal events at {terminals} of {len(events)}"
    lifecycle = _Lifecycle()
    for event in events[2:-1]:
        lifecycle.see(event)
    assert lifecycle.open is None, "an output item was never closed"
    final = events[-1]["response"]
    assert final["status"] == TERMINAL_STATUS[types[-1]]
    assert final["output"] == lifecycle.done, "final output differs from the items streamed"
    if final["status"] == "failed":
        assert final["error"] and final["error"]["message"] and final["error"]["code"]
    return Response.model_validate(final)


class _Lifecycle:
    """Follows items and parts: added before deltas, deltas add up to done, one at a time."""

    def __init__(self) -> None:
        self.done: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None
        self.part: int | None = None
        self.buffer = ""
        self.text_done: str | None = None  # the value of the last text `.done` event

    def see(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "response.in_progress":
            return
        if kind == "response.output_item.added":
            assert self.open is None, "item added while another is open"
            assert event["output_index"] == len(self.done)
            self.open, self.buffer, self.text_done = event["item"], "", None
            return
        assert self.open is not None, f"{kind} outside an item"
        assert event["output_index"] == len(self.done)
        if "item_id" in event:
            assert event["item_id"] == self.open["id"]
        if kind == "response.output_item.done":
            self._close_item(event["item"])
        elif kind == "response.content_part.added":
            assert self.part is None
            self.part, self.buffer, self.text_done = event["content_index"], "", None
        elif kind == "response.content_part.done":
            assert self.part == event["content_index"]
            assert self.text_done == self.buffer, f"no text .done before {kind}"
            assert event["part"]["text"] == self.buffer
            self.part = None
        elif kind.endswith(".delta"):
            assert self.text_done is None, f"{kind} after the text was done"
            self.buffer += event["delta"]
        elif kind.endswith(".done"):
            value = event.get("text", event.get("arguments", event.get("input")))
            assert value == self.buffer, f"{kind} says {value!r}, deltas said {self.buffer!r}"
            self.text_done = value

    def _close_item(self, item: dict[str, Any]) -> None:
        assert self.part is None, "item closed with a content part still open"
        assert item["id"] == self.open["id"] and item["type"] == self.open["type"]
        if "call_id" in item:
            assert item["call_id"] == self.open["call_id"]
        for name in ("arguments", "input"):
            if name in item and (self.buffer or self.text_done is not None):
                assert item[name] == self.text_done, f"item {name} differs from its .done event"
        self.done.append(item)
        self.open = None


def assert_openai_error(exc: openai.APIStatusError, status: int) -> dict[str, Any]:
    """Check an SDK error: its status and the OpenAI error shape; return the error object."""
    assert exc.status_code == status, exc.response.text
    body = exc.response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"message", "type", "param", "code"} <= set(error), error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    return error


def assert_refused(
    app: Flask, backend: FakeBackend, call: Callable[[], Any], status: int
) -> dict[str, Any]:
    """`call` fails with `status` in the OpenAI shape; nothing sent upstream, nothing stored."""
    sent = len(backend.chat_requests())
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    error = assert_openai_error(caught.value, status)
    assert len(backend.chat_requests()) == sent, "the refused request reached the backend"
    assert_nothing_stored(app)
    return error


def last_chat(backend: FakeBackend) -> dict[str, Any]:
    """The body of the last chat completion request the backend received."""
    requests = backend.chat_requests()
    assert requests, "the backend received no chat request"
    return requests[-1]


def assert_chat_body_clean(body: dict[str, Any]) -> None:
    """A Chat body carries no Responses-only parameter and no empty assistant turn."""
    assert not RESPONSES_ONLY & set(body), RESPONSES_ONLY & set(body)
    for message in body["messages"]:
        if message["role"] == "assistant":
            assert message.get("content") or message.get("tool_calls"), message


def store_path(app: Flask) -> Path:
    return Path(app.extensions["settings"].store_dsn)


def stored_count(app: Flask, table: str) -> int:
    """Rows of `table` in the app's SQLite file, read apart from the app."""
    with sqlite3.connect(f"file:{store_path(app)}?mode=ro", uri=True) as connection:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def assert_nothing_stored(app: Flask) -> None:
    assert stored_count(app, "responses") == 0
    assert stored_count(app, "items") == 0


def store_bytes(app: Flask) -> bytes:
    """Every byte of the SQLite store: the file and its WAL/shared-memory files."""
    path = store_path(app)
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return b"".join(file.read_bytes() for file in files if file.exists())


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve_in_thread(app: Flask) -> Iterator[str]:
    """Serve `app` on a loopback port in a thread (for async clients); yield its /v1 URL."""
    server = make_server(host="127.0.0.1", port=0, app=app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
