"""Server-sent event framing: the one function that turns an event into bytes."""

from __future__ import annotations

import json
from typing import Any

KEEPALIVE_COMMENT = b": keep-alive\n\n"


def encode_event(event: dict[str, Any]) -> bytes:
    """Frame one Responses API event as `event: TYPE` + `data: JSON`."""
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event['type']}\ndata: {data}\n\n".encode()
