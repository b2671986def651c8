"""Use case: background responses (`background: true`).

The response is stored as `queued` and answered at once; a runner (a
greenlet under gevent) then streams it from the backend, storing its
events as they happen and the final response at the end. Any worker can
poll it, cancel it, or follow its event stream from any sequence number.
A cancel cuts the backend call at once when it reaches the worker running
the response; a runner elsewhere notices within `CANCEL_POLL_SECONDS`.

The runner holds a lease on its response and renews it as it goes. A
worker that dies (killed, out of memory) renews nothing: once the lease
has run out, whoever looks next (a follower, a retrieval, the sweep)
fails the response with a clear error and stores its terminal event, so
followers end at once instead of waiting for the read timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from app.auth.principal import Owner, Principal
from app.errors import GatewayError, InvalidRequest, NotFound
from app.protocol.responses.events import TERMINAL_EVENT_TYPES, ResponseEmitter
from app.protocol.responses.objects import RUNNING_STATUSES, TERMINAL_STATUSES
from app.services import limits
from app.services.prepare import Prepared
from app.services.streaming import Events, Upstream, stream_events
from app.store import db, responses, retention

log = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 0.25
FLUSH_SECONDS = 0.1
FOLLOW_POLL_SECONDS = 0.2
END_GRACE_SECONDS = 2.0
RENEWALS_PER_LEASE = 3
ABANDONED = {
    "code": "server_error",
    "message": (
        "The background response stopped: the gateway worker running it ended "
        "before it finished. Create it again."
    ),
}


def start(
    prepared: Prepared, principal: Principal, keepalive_seconds: float, lease_seconds: float
) -> dict[str, Any]:
    """Store the response as queued and start running it; return the queued response."""
    response = prepared.response
    response["status"] = "queued"
    conversation = prepared.request.get("conversation")
    with db.connection_context():
        responses.start_response(
            prepared.owner,
            response,
            prepared.input_items,
            conversation,
            time.time() + lease_seconds,
        )
    queued = dict(response)
    runner = threading.Thread(
        target=_run,
        args=(prepared, principal, min(keepalive_seconds, CANCEL_POLL_SECONDS), lease_seconds),
        name=f"background-{response['id'][-8:]}",
        daemon=True,
    )
    runner.start()
    return queued


class _Runs:
    """The backend calls of the background responses this process runs, by response id."""

    def __init__(self) -> None:
        self.upstreams: dict[str, Upstream] = {}
        self.cut: set[str] = set()
        self.lock = threading.Lock()

    def add(self, response_id: str, upstream: Upstream) -> None:
        with self.lock:
            self.upstreams[response_id] = upstream

    def remove(self, response_id: str) -> None:
        with self.lock:
            self.upstreams.pop(response_id, None)
            self.cut.discard(response_id)

    def cut_here(self, response_id: str) -> None:
        """Cut the response's backend call now, if this process runs it."""
        with self.lock:
            upstream = self.upstreams.get(response_id)
            if upstream is not None:
                self.cut.add(response_id)
        if upstream is not None:
            upstream.close()


_runs = _Runs()


def _run(
    prepared: Prepared, principal: Principal, wake_seconds: float, lease_seconds: float
) -> None:
    response_id = prepared.response["id"]
    prepared.response["status"] = "in_progress"
    try:
        with db.connection_context():
            responses.set_response(prepared.response, time.time() + lease_seconds)
        upstream = Upstream(prepared, principal, wake_seconds)
        _runs.add(response_id, upstream)
        chunks = iter(upstream)
        events = stream_events(
            prepared,
            upstream,
            chunks,
            cancelled=_stop_check(response_id),
            calling=lambda next_call: _runs.add(response_id, next_call),
        )
        _record(prepared.owner, response_id, events, lease_seconds)
    except Exception as exc:
        log.exception("background response %s failed to run", response_id)
        error = exc if isinstance(exc, GatewayError) else None
        limits.settle_alone(prepared.admission, prepared.response, error)  # once only
    finally:
        _runs.remove(response_id)


def _stop_check(response_id: str) -> Any:
    """Tell whether the response stopped running: at once if cancelled here, else by
    asking the store every CANCEL_POLL_SECONDS (cancelled elsewhere, or failed by a
    reaper after this runner lost its lease)."""
    last_check = [0.0]

    def stopped() -> bool:
        if response_id in _runs.cut:
            return True
        now = time.monotonic()
        if now - last_check[0] < CANCEL_POLL_SECONDS:
            return False
        last_check[0] = now
        with db.connection_context():
            state = responses.run_state(response_id)
        return state is None or state[0] not in RUNNING_STATUSES

    return stopped


def _record(
    owner: Owner, response_id: str, batches: Iterator[Events], lease_seconds: float
) -> None:
    """Store events in small batches, the first and the terminal one at once; renew the lease."""
    batch: Events = []
    flushed_at = renewed_at = time.monotonic()
    for position, events in enumerate(batches):
        batch += events
        ended = bool(events) and events[-1]["type"] in TERMINAL_EVENT_TYPES
        now = time.monotonic()
        # The opening events at once: a follower finds the stream begun.
        if ended or not position or now - flushed_at >= FLUSH_SECONDS:
            with db.connection_context():
                responses.append_events(owner, response_id, batch)
            batch, flushed_at = [], now
        if not ended and now - renewed_at >= lease_seconds / RENEWALS_PER_LEASE:
            with db.connection_context():
                responses.renew_lease(response_id, time.time() + lease_seconds)
            renewed_at = now
    if batch:
        with db.connection_context():
            responses.append_events(owner, response_id, batch)


def stored_response(owner: Owner, response_id: str) -> dict[str, Any]:
    """Return `owner`'s stored response or raise 404 (a dead runner's is failed first)."""
    response = responses.get_response(owner, response_id)
    if response is not None and response["status"] in RUNNING_STATUSES and reap(response_id):
        response = responses.get_response(owner, response_id)
    if response is None:
        raise response_not_found(response_id)
    return response


def response_not_found(response_id: str) -> NotFound:
    """The 404 of a response that is not stored, not the caller's, or expired."""
    return NotFound(f"Response with id '{response_id}' not found.", param="response_id")


def reap(response_id: str, state: tuple[str, float | None] | None = None) -> bool:
    """Fail the response if its runner's lease ran out; tell whether it did so now."""
    state = state or responses.run_state(response_id)
    if not _lease_ran_out(state):
        return False
    failed = responses.fail_abandoned(response_id, time.time(), _failed)
    if failed:
        log.warning("background response %s: its runner's lease ran out; failed", response_id)
    return failed


def _lease_ran_out(state: tuple[str, float | None] | None) -> bool:
    if state is None or state[0] not in RUNNING_STATUSES or state[1] is None:
        return False
    return state[1] < time.time()


def reap_abandoned() -> int:
    """Fail every response whose runner's lease ran out; return how many."""
    return sum(reap(response_id) for response_id in responses.abandoned(time.time()))


def _failed(response: dict[str, Any], events: Events) -> Events:
    """Fail an abandoned response where its stored stream stopped: the events that end it."""
    emitter = ResponseEmitter.resume(response, events)
    if not events:  # it never started: its stream starts and ends here
        return [*emitter.start(), *emitter.fail(ABANDONED), emitter.terminal_event()]
    return [*emitter.fail(ABANDONED), emitter.terminal_event()]


def cancel(owner: Owner, response_id: str) -> dict[str, Any]:
    """Ask a running background response to stop; return it as cancelled."""
    response = stored_response(owner, response_id)
    if not response.get("background"):
        raise InvalidRequest(
            "Only responses created with background=true can be cancelled.",
            param="response_id",
            code="invalid_request",
        )
    if response["status"] in RUNNING_STATUSES:
        response["status"] = "cancelled"
        responses.set_response(response)
        _runs.cut_here(response_id)
    return response


def follow(
    owner: Owner, response_id: str, starting_after: int, idle_limit: float
) -> Iterator[Events]:
    """Yield a background response's events after `starting_after`, a batch per poll, to its end.

    Ends at the terminal event; or when the response is over and no event
    came for `END_GRACE_SECONDS` (its runner died), or none for `idle_limit`.
    A runner whose lease ran out is reaped here: its terminal event follows.
    """
    after, idle_since = starting_after, time.monotonic()
    while True:
        with db.connection_context():
            events = responses.events_after(owner, response_id, after)
            state = responses.run_state(response_id)
            if not events and reap(response_id, state):
                continue
        status = state[0] if state else None
        for end, event in enumerate(events, 1):
            if event["type"] in TERMINAL_EVENT_TYPES:
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


def check_followable(owner: Owner, response_id: str) -> None:
    """Refuse to stream a response not made in background mode, or whose events were pruned."""
    response = stored_response(owner, response_id)
    if not response.get("background"):
        raise InvalidRequest(
            "Only responses created with background=true can be streamed again.",
            param="stream",
            code="invalid_request",
        )
    if retention.events_pruned(response_id):
        raise NotFound(
            f"The events of response '{response_id}' are no longer kept "
            "(GATEWAY_EVENTS_TTL); retrieve it without stream=true.",
            param="stream",
            code="stream_expired",
        )
