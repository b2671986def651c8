"""Shared helpers of the integration tests: the SDK calls, the checks, the store.

Every body and every stream event these helpers hand back has been checked
against the openai SDK's pydantic types; streams go through
`tests/events.py`'s `assert_valid_event_stream`.
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
from typing import Any

import openai
import pytest
from flask import Flask
from openai.types.responses import Response
from werkzeug.serving import make_server

from tests.events import assert_valid_event_stream
from tests.fakebackend import FakeBackend

MODEL = "fake-model"
DEFAULT_TEXT = "Hello from the fake backend."
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


def iter_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Decode SSE frames as they arrive; each frame's `event:` name must match its type."""
    name = None
    for line in lines:
        if line.startswith("event:"):
            name = line[len("event:") :].strip()
        elif line.startswith("data:"):
            event = json.loads(line[len("data:") :])
            assert name in (None, event["type"]), f"frame name {name} != {event['type']}"
            name = None
            yield event


def sse_events(lines: Iterator[str]) -> list[dict[str, Any]]:
    """Parse all `event:`/`data:` frames (see `iter_events`)."""
    return list(iter_events(lines))


def assert_valid_stream(events: list[dict[str, Any]]) -> Response:
    """Validate every event and the stream's invariants; return the terminal response."""
    response = assert_valid_event_stream(events)
    assert response is not None, "the stream was a lone error event"
    return response


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
    return Path(app.extensions["settings"].store.dsn)


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
