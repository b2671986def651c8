"""What every backend is, whatever API it speaks: `Backend`, and what its dialect gives.

A backend owns its transport (app/backends/transport.py), its circuit
breaker and its failure metrics, and posts JSON to the one endpoint its
dialect names. A dialect (one module per API under app/backends/dialects/)
adds the four things services use: `translate` a Responses request into
its body, `complete` it for a whole answer, `open_stream` for a streamed
one, and a `turn` that turns the streamed body into the response's events.
Services see only this interface: they never name an API.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import urllib3

from app import compact_json
from app.auth.principal import Principal
from app.backends.breaker import CircuitBreaker
from app.backends.inflight import CallHandle
from app.backends.transport import BodyStream, Transport, read_text
from app.config import BackendSettings
from app.errors import upstream_error
from app.observe import BACKEND_ERRORS, CIRCUIT_OPEN
from app.protocol.responses.events import Events, ResponseEmitter

log = logging.getLogger(__name__)

JSON_HEADERS = {"Content-Type": "application/json"}
# Headers of a call that asks for an event stream: it is read off the socket
# as it comes, so it must not be compressed.
STREAM_HEADERS = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}

Answer = tuple[list[dict[str, Any]], dict[str, Any], str | None]  # output, usage, incomplete


class Outgoing(Protocol):
    """A request translated for one backend: its body, and what had to be left out."""

    body: dict[str, Any]
    dropped_tools: list[str]
    tool_kinds: dict[str, str]  # each tool's name -> its kind ("hosted": the gateway runs it)


class Turn(Protocol):
    """One streamed answer being read: bytes in, the response's events out."""

    @property
    def done(self) -> bool:
        """The backend said the body holds no more events."""

    @property
    def finished(self) -> bool:
        """The backend said how the answer ended (a cut stream never does)."""

    def feed(self, data: bytes, events: Events) -> Events:
        """Add to `events` those one read of the body makes; return `events`."""

    def end(self) -> str | None:
        """Count the turn's usage; return why the answer is incomplete, if it is."""


class Backend:
    """One configured model server: its connections, its breaker, and its dialect's calls."""

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.breaker = CircuitBreaker()
        self.transport = Transport(settings, self.endpoint(), self.failed)
        base = {**self.transport.session.headers, **JSON_HEADERS}
        self.json_headers = base
        self.stream_headers = {**base, **STREAM_HEADERS}

    # --- what a dialect defines -------------------------------------------------

    def endpoint(self) -> str:
        """The URL this backend's requests are posted to."""
        raise NotImplementedError

    def translate(
        self, request: dict[str, Any], items: list[dict[str, Any]], *, stream: bool
    ) -> Outgoing:
        """The body to send for `request`, continuing `items`; bad input raises here."""
        raise NotImplementedError

    def complete(self, outgoing: Outgoing, principal: Principal) -> Answer:
        """Send `outgoing` and return the whole answer as Responses output, usage, end."""
        raise NotImplementedError

    def open_stream(
        self, outgoing: Outgoing, principal: Principal, handle: CallHandle | None = None
    ) -> BodyStream:
        """Send `outgoing` for a streamed answer; errors before its body raise here."""
        raise NotImplementedError

    def turn(self, outgoing: Outgoing, emitter: ResponseEmitter) -> Turn:
        """A reader of `outgoing`'s streamed answer, feeding `emitter`."""
        raise NotImplementedError

    def list_models(self, principal: Principal) -> list[dict[str, Any]]:
        """The backend's models (its configured list if it cannot be asked)."""
        return [model_entry(model, self.name) for model in self.settings.models]

    # --- what every dialect shares ----------------------------------------------

    def failed(self, kind: str) -> None:
        """Count a backend failure towards its breaker and the metrics."""
        self.breaker.record_failure()
        BACKEND_ERRORS.labels(self.name, kind).inc()
        CIRCUIT_OPEN.labels(self.name).set(1 if self.breaker.is_open else 0)

    def headers(self, principal: Principal, stream: bool) -> dict[str, str]:
        """Per-call headers: the backend's own key, else the one the caller passes on."""
        headers = dict(self.stream_headers if stream else self.json_headers)
        key = self.settings.api_key or principal.backend_key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def post(
        self,
        body: dict[str, Any],
        principal: Principal,
        stream: bool,
        handle: CallHandle | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """POST `body` past the breaker; a refusal or failure status raises as the gateway's."""
        self.breaker.check(self.name)
        data = compact_json.dumps(body).encode()
        response = self.transport.post(data, self.headers(principal, stream), stream, handle)
        if response.status >= 400:
            raise self._refusal(response)
        self.breaker.record_success()
        CIRCUIT_OPEN.labels(self.name).set(0)
        return response

    def _refusal(self, response: urllib3.BaseHTTPResponse) -> Exception:
        status = response.status
        if status >= 500:
            self.failed(f"http_{status}")
        body = _json_or_text(read_text(response))
        return upstream_error(status, body, response.headers.get("Retry-After"), self.name)


def _json_or_text(text: str) -> Any:
    try:
        return compact_json.loads(text)
    except ValueError:
        return text[:1000]


def model_entry(model_id: str, owner: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner}
