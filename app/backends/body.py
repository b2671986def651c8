"""An HTTP/1.1 response body decoded as its bytes arrive: chunked, sized, or to the close.

The streaming reader takes the socket from urllib3 once the headers are in
and reads it itself (so it can wake up while the backend is silent); this
is the part of http.client it then does without. `feed` returns the body
bytes that have arrived; `complete` tells that the body ended where the
protocol says it ends, so the connection can be used again.
"""

from __future__ import annotations

MAX_CHUNK_HEADER = 4096


class BodyError(ValueError):
    """The backend's body does not follow HTTP/1.1 framing."""


class BodyDecoder:
    """Decode one response body; `length` None and not chunked means: until the close."""

    def __init__(self, chunked: bool, length: int | None = None) -> None:
        self.chunked = chunked
        self.remaining = length  # bytes left: of the body, or of the current chunk
        self.buffer = b""
        self.complete = not chunked and length == 0
        self.in_trailer = False

    def feed(self, data: bytes) -> bytes:
        """Return the body bytes in `data` (framing removed)."""
        if self.complete:
            return b""
        if not self.chunked:
            return self._sized(data)
        self.buffer += data
        out = []
        while not self.complete and self.buffer:
            if self.remaining:
                piece = self.buffer[: self.remaining]
                self.buffer = self.buffer[len(piece) :]
                self.remaining -= len(piece)
                out.append(piece)
            elif not self._header():
                break
        return b"".join(out)

    def end_of_stream(self) -> None:
        """The backend closed the connection: fine only where the body ends at the close."""
        if self.chunked or self.remaining:
            raise BodyError("the backend closed the connection inside the body")
        self.complete = True

    def _sized(self, data: bytes) -> bytes:
        if self.remaining is None:
            return data
        piece = data[: self.remaining]
        self.remaining -= len(piece)
        self.complete = self.remaining == 0
        return piece

    def _header(self) -> bool:
        """Consume the CRLF that ends a chunk, a size line, or a trailer line, if whole."""
        line, found, rest = self.buffer.partition(b"\r\n")
        if not found:
            if len(self.buffer) > MAX_CHUNK_HEADER:
                raise BodyError("chunk size line too long")
            return False
        self.buffer = rest
        if self.in_trailer:
            self.complete = not line
        elif line:  # the blank line after a chunk's data has no size
            self._start_chunk(line)
        return True

    def _start_chunk(self, line: bytes) -> None:
        size = line.split(b";", 1)[0].strip()
        try:
            self.remaining = int(size, 16)
        except ValueError:
            raise BodyError(f"invalid chunk size {size[:20]!r}") from None
        if self.remaining < 0:
            raise BodyError(f"invalid chunk size {size[:20]!r}")
        self.in_trailer = self.remaining == 0
