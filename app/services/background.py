"""Use case: background responses (`background: true`).

The response is stored as `queued` and answered at once; a runner (a
greenlet under gevent) then streams it from the backend, storing its
events as they happen and the final response at the end. Any worker can
poll it, cancel it (the runner notices within `CANCEL_POLL_SECONDS`), or
follow its event stream from any sequence number.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from app.errors import InvalidRequest, NotFound
from app.services.prepare import Prepared
from app.services.streaming import Events, Upstream, stream_events
from app.store import db, responses

log = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 0.5
FLUSH_SECONDS = 0.1
FOLLOW_POLL_SECONDS = 0.2
END_GRACE_SECONDS = 2.0
TERMINAL_STATUSES = ("completed", "incomplete", "failed", "cancelled")
TERMINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")


def start(prepared: Prepared, client_key: str | None, keepalive_seconds: float) -> dict[str, Any]:
    """Store the response as queued and start running it; return the queued response."""
    response = prepared.response
    response["status"] = "queued"
    conversation = prepared.request.get("conversation")
    with db.connection_context():
        responses.start_response(response, prepared.input_items, conversation)
    queued = dict(response)
    runner = threading.Thread(
        target=_run,
        args=(prepared, client_key, min(keepalive_seconds, CANCEL_POLL_SECONDS)),
        name=f"background-{response['id'][-8:]}",
        daemon=True,
    )
    runner.start()
    return queued


def _run(prepared: Prepared, client_key: str | None, wake_seconds: float) -> None:
    response_id = prepared.response["id"]
    prepared.response["status"] = "in_progress"
    try:
        with db.connection_context():
            responses.set_response(prepared.response)
        upstream = Upstream(prepared, client_key, wake_seconds)
        chunks = iter(upstream)
        events = stream_events(prepared, upstream, chunks, cancelled=_cancel_check(response_id))
        _record(response_id, events)
    except Exception:
        log.exception("background response %s failed to run", response_id)


def _cancel_check(response_id: str) -> Any:
    last_check = [0.0]

    def cancelled() -> bool:
        now = time.monotonic()
        if now - last_check[0] < CANCEL_POLL_SECONDS:
            return False
        last_check[0] = now
        with db.connection_context():
            return responses.response_status(response_id) == "cancelled"

    return cancelled


def _record(response_id: str, batches: Iterator[Events]) -> None:
    """Store events in small batches, and every terminal event at once."""
    batch: Events = []
    flushed_at = time.monotonic()
    for events in batches:
        batch += events
        ended = bool(events) and events[-1]["type"] in TERMINAL_EVENTS
        if ended or time.monotonic() - flushed_at >= FLUSH_SECONDS:
            with db.connection_context():
                responses.append_events(response_id, batch)
            batch, flushed_at = [], time.monotonic()
    if batch:
        with db.connection_context():
            responses.append_events(response_id, batch)


def stored_response(response_id: str) -> dict[str, Any]:
    """Return a stored response or raise 404."""
    response = responses.get_response(response_id)
    if response is None:
        raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return response


def cancel(response_id: str) -> dict[str, Any]:
    """Ask a running background response to stop; return it as cancelled."""
    response = stored_response(response_id)
    if not response.get("background"):
        raise InvalidRequest(
            "Only responses created with background=true can be cancelled.",
            param="response_id",
            code="invalid_request",
        )
    if response["status"] in ("queued", "in_progress"):
        response["status"] = "cancelled"
        responses.set_response(response)
    return response


def follow(response_id: str, starting_after: int, idle_limit: float) -> Iterator[Events]:
    """Yield a background response's events after `starting_after`, a batch per poll, to its end.

    Ends at the terminal event; or when the response is over and no event
    came for `END_GRACE_SECONDS` (its runner died), or none for `idle_limit`.
    """
    after, idle_since = starting_after, time.monotonic()
    while True:
        with db.connection_context():
            events = responses.events_after(response_id, after)
            status = responses.response_status(response_id)
        for end, event in enumerate(events, 1):
            if event["type"] in TERMINAL_EVENTS:
                yield events[:end]
                return
        if events:
            yield events
            after = events[-1]["sequence_number"]
        idle = time.monotonic() - idle_since
        if events:
            idle_since = time.monotonic()
        elif idle > idle_limit or (status in TERMINAL_STATUSES and idle > END_GRACE_SECONDS):
            return
        else:
            time.sleep(FOLLOW_POLL_SECONDS)


def check_followable(response_id: str) -> None:
    """Refuse to stream a response that was not created in background mode."""
    if not stored_response(response_id).get("background"):
        raise InvalidRequest(
            "Only responses created with background=true can be streamed again.",
            param="stream",
            code="invalid_request",
        )
