"""Reading a backend's server-sent events as they arrive, with a bounded buffer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

READ_SIZE = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024
DONE = "[DONE]"


class SSEError(ValueError):
    """The backend's stream is not readable as server-sent events."""


def iter_sse_data(raw: Any, max_line: int = MAX_LINE_BYTES) -> Iterator[str]:
    """Yield each `data:` payload of the stream until `[DONE]` or the end.

    `read1` returns whatever has arrived, so small events are not held back
    waiting for a full buffer (iter_lines would wait for 512 bytes).
    """
    pending = b""
    while True:
        chunk = raw.read1(READ_SIZE)
        if not chunk:
            return
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            data = _data_of(line)
            if data == DONE:
                return
            if data is not None:
                yield data
        if len(pending) > max_line:
            raise SSEError(f"backend sent a line longer than {max_line} bytes")


def _data_of(line: bytes) -> str | None:
    line = line.rstrip(b"\r")
    if not line.startswith(b"data:"):
        return None
    return line[5:].strip().decode("utf-8", errors="replace")
