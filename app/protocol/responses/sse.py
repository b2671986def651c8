"""Server-sent event framing: the one function that turns an event into bytes."""

from __future__ import annotations

from typing import Any

from app.compact_json import dumps


def encode_event(event: dict[str, Any]) -> bytes:
    """Frame one Responses API event as `event: TYPE` + `data: JSON`."""
    return f"event: {event['type']}\ndata: {dumps(event)}\n\n".encode()
