"""Observability: one log line per request and the Prometheus metrics.

Metrics work in gunicorn's multiprocess mode when PROMETHEUS_MULTIPROC_DIR
is set (gunicorn.conf.py sets it), so every worker is counted in /metrics.
A streamed request is measured when its stream ends, not when its headers
leave, so durations, tokens and status are those of the whole stream.
The `model` label takes a bounded set of names (`ModelLabels`): a client
cannot add a series per name it makes up.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from app.logs import log_event
from app.protocol.responses.events import TERMINAL_EVENT_TYPES

log = logging.getLogger("gateway.requests")

MAX_MODEL_LABELS = 64
OTHER_MODEL = "other"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
FIRST_TOKEN_EVENTS = (
    "response.output_text.delta",
    "response.reasoning_text.delta",
    "response.function_call_arguments.delta",
    "response.output_item.added",
)

REQUESTS = Counter(
    "gateway_requests", "Requests by route, model and status", ["route", "model", "status"]
)
LATENCY = Histogram(
    "gateway_request_duration_seconds",
    "Request duration",
    ["route", "stream"],
    buckets=LATENCY_BUCKETS,
)
FIRST_TOKEN = Histogram(
    "gateway_time_to_first_token_seconds",
    "Time to the first output event",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
TOKENS = Counter("gateway_tokens", "Tokens by model and direction", ["model", "direction"])
ACTIVE_STREAMS = Gauge("gateway_active_streams", "Streams being sent", multiprocess_mode="livesum")
BACKEND_ERRORS = Counter(
    "gateway_backend_errors", "Backend failures by backend and kind", ["backend", "kind"]
)
STORE_WRITES_WAITING = Gauge(
    "gateway_store_writes_waiting",
    "Writes waiting for SQLite's write lock (another process holds it)",
    multiprocess_mode="livesum",
)
SHARED_WRITES = Histogram(
    "gateway_store_shared_writes",
    "Requests' writes committed by one shared SQLite transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
CIRCUIT_OPEN = Gauge(
    "gateway_circuit_open",
    "1 while a backend's breaker is open",
    ["backend"],
    multiprocess_mode="livemax",
)


@dataclass
class RequestRecord:
    """What one request did, filled in as it goes and reported once at its end."""

    method: str
    route: str
    started: float = field(default_factory=time.perf_counter)
    status: int = 0
    model: str = "-"
    stream: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    first_token_seconds: float | None = None
    outcome: str = "-"
    labels: ModelLabels | None = None  # what `model` becomes as a metrics label
    request_id: str = ""  # sent back as x-request-id; the audit log names it

    def model_label(self) -> str:
        """The metrics' name for this request's model (a bounded set: `ModelLabels`)."""
        if self.labels is None or self.model == "-":
            return self.model
        return self.labels.label(self.model, served=self.status < 400)

    def take_response(self, response: dict[str, Any] | None) -> None:
        """Note the outcome and token counts of a finished response."""
        response = response or {}
        self.outcome = response.get("status", self.outcome)
        usage = response.get("usage") or {}
        self.input_tokens = usage.get("input_tokens", 0)
        self.output_tokens = usage.get("output_tokens", 0)

    def finish(self, json_logs: bool = False) -> None:
        """Log the request line and count it."""
        duration = time.perf_counter() - self.started
        if log.isEnabledFor(logging.INFO):
            self._log_line(duration, json_logs)
        model = self.model_label()
        REQUESTS.labels(self.route, model, str(self.status)).inc()
        LATENCY.labels(self.route, str(self.stream).lower()).observe(duration)
        if self.input_tokens or self.output_tokens:
            TOKENS.labels(model, "input").inc(self.input_tokens)
            TOKENS.labels(model, "output").inc(self.output_tokens)
        if self.first_token_seconds is not None:
            FIRST_TOKEN.labels(model).observe(self.first_token_seconds)

    def _log_line(self, duration: float, json_logs: bool) -> None:
        fields = {
            "request_id": self.request_id,
            "method": self.method,
            "route": self.route,
            "model": self.model,
            "status": self.status,
            "stream": self.stream,
            "outcome": self.outcome,
            "duration_ms": round(duration * 1000, 1),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }
        log_event(log, "request_completed", fields, json_logs)


class StreamWatch:
    """Notes a stream's first token, usage and outcome as its batches go out.

    `sse_response` calls `start` when the stream starts, `see` with each
    batch and `end` once: an observer rather than one more generator around
    the stream, which every token would pass through (and every waiting
    stream would keep on its stack).
    """

    def __init__(self, record: RequestRecord) -> None:
        self.record = record

    def start(self) -> None:
        ACTIVE_STREAMS.inc()

    def see(self, batch: list[dict[str, Any]]) -> None:
        record = self.record
        for event in batch:
            if record.first_token_seconds is None and event["type"] in FIRST_TOKEN_EVENTS:
                record.first_token_seconds = time.perf_counter() - record.started
            if event["type"] in TERMINAL_EVENT_TYPES:
                record.take_response(event.get("response"))

    def end(self) -> None:
        ACTIVE_STREAMS.dec()
        if self.record.outcome == "-":
            self.record.outcome = "disconnected"


class ModelLabels:
    """The names the `model` label may take: the configured models, and (up to a bound)
    those a backend that lists none answered; anything else is `other`."""

    def __init__(self, configured: Iterable[str], limit: int = MAX_MODEL_LABELS) -> None:
        self.known = set(configured)
        self.limit = max(limit, len(self.known))

    def label(self, model: str, served: bool = False) -> str:
        """The label of `model`; `served`: a backend took the request for it."""
        if model in self.known:
            return model
        if served and len(self.known) < self.limit:
            self.known.add(model)
            return model
        return OTHER_MODEL


def init_app(app: Any, settings: Any) -> None:
    """Bound the `model` label to the configured models (and what backends answer)."""
    configured = [model for backend in settings.backends for model in backend.models]
    app.extensions["model_labels"] = ModelLabels(configured)


def metrics_payload() -> tuple[bytes, str]:
    """The exposition text of every worker's metrics (or this process's)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
