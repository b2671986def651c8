"""Request and response helpers shared by the blueprints."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Response, current_app, g, request

from app.errors import InvalidRequest
from app.observe import StreamWatch
from app.protocol.responses.sse import encode_event
from app.services.context import RequestContext, ServiceContext

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MAX_PAGE = 100
# Stored event numbers are a 32-bit integer column (PostgreSQL `integer`).
MAX_SEQUENCE_NUMBER = 2**31 - 1
DEFAULT_PAGE = 20


def json_body(empty: Any = None) -> Any:
    """Return the parsed JSON body (`empty` if there is none and that is allowed)."""
    data = request.get_data(cache=False)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and limit is not None and len(data) >= limit:
        # A chunked body is cut at the limit without a word; reading on past
        # it makes werkzeug raise its 413.
        request.stream.read(1)
    if empty is not None and not data:
        return empty
    try:
        return json.loads(data)
    except ValueError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The OpenAI API expects a "
            "JSON payload.",
            code="invalid_json",
        ) from None


def services() -> ServiceContext:
    """The running gateway's parts, for the use cases."""
    return current_app.extensions["services"]


def request_context() -> RequestContext:
    """This request's caller (resolved on first use: /health and /metrics never ask)."""
    context = g.get("context")
    if context is None:
        principal = current_app.extensions["auth"].principal_for(request.headers)
        context = g.context = RequestContext(principal)
    return context


def sse_response(
    batches: Iterable[list[dict[str, Any]]],
    headers: dict[str, str] | None = None,
    watch: StreamWatch | None = None,
) -> Response:
    """Wrap a generator of event batches as `text/event-stream`: one write per batch."""
    return Response(
        _frames(batches, watch),
        mimetype="text/event-stream",
        headers={**SSE_HEADERS, **(headers or {})},
    )


def _frames(batches: Iterable[list[dict[str, Any]]], watch: StreamWatch | None) -> Iterator[bytes]:
    if watch is not None:
        watch.start()
    try:
        for batch in batches:
            if watch is not None:
                watch.see(batch)
            if batch:
                yield b"".join([encode_event(event) for event in batch])
    finally:
        close = getattr(batches, "close", None)
        if close:
            close()
        if watch is not None:
            watch.end()


def flag_arg(name: str) -> bool:
    """A boolean query parameter (`true`/`false`), checked."""
    value = request.args.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidRequest(f"Invalid '{name}': expected true or false.", param=name)
    return value in ("true", "1")


def int_arg(name: str, default: int | None, minimum: int, maximum: int | None = None) -> int | None:
    """A whole-number query parameter within bounds, checked."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"Invalid '{name}': expected an integer.", param=name) from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise InvalidRequest(f"Invalid '{name}': must be {bounds}.", param=name)
    return value


def page_args(default: int = DEFAULT_PAGE, maximum: int = MAX_PAGE) -> dict[str, Any]:
    """`limit`, `order`, `after`, `before` of a list request, checked."""
    args = request.args
    limit = int_arg("limit", default=default, minimum=1, maximum=maximum)
    order = args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("Invalid 'order': expected 'asc' or 'desc'.", param="order")
    return {
        "limit": limit,
        "order": order,
        "after": args.get("after"),
        "before": args.get("before"),
    }
