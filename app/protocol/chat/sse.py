"""Server-sent events as a Chat backend streams them: bytes in, `data:` payloads out, bounded."""

from __future__ import annotations

MAX_LINE_BYTES = 1024 * 1024
DONE = "[DONE]"


class SSEError(ValueError):
    """The backend's stream is not readable as server-sent events."""


class SSEParser:
    """Split whatever bytes have arrived into the `data:` payloads they complete.

    A partial line waits for the next `feed`; one longer than `max_line`
    is an error, so a backend cannot make the gateway buffer without end.
    After `data: [DONE]` the parser is `done` and ignores the rest.
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self.pending = b""
        self.done = False

    def feed(self, data: bytes) -> list[str]:
        """Return the payloads of the lines that `data` completes."""
        if self.done:
            return []
        data = self.pending + data  # no copy while nothing is pending
        *lines, self.pending = data.split(b"\n")
        # No line can be longer than what came in: most reads need no check.
        long_lines_possible = len(data) > self.max_line
        payloads = []
        for line in lines:
            if long_lines_possible:
                self._check_length(line)
            if line.startswith(b"data:"):
                payload = line[5:].strip().decode("utf-8", errors="replace")
                if payload == DONE:
                    self.done = True
                    return payloads
                payloads.append(payload)
        if long_lines_possible:
            self._check_length(self.pending)
        return payloads

    def _check_length(self, line: bytes) -> None:
        """A whole line, or the start of one still arriving, must fit `max_line`."""
        if len(line) > self.max_line:
            raise SSEError(f"backend sent a line longer than {self.max_line} bytes")
