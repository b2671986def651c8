"""A streaming Chat reply, read off the backend's socket by the greenlet that relays it.

Once the headers are in, the body is read straight from the socket with a
timeout of `wake_every` seconds: a silent backend wakes the reader, which
yields None so the relay can send a keep-alive, and reads on. That costs
no second greenlet, no queue and no urllib3 or http.client layers per
token. A body read to its end gives its connection back to the pool.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from app.backends.body import BodyDecoder, BodyError
from app.backends.inflight import CallCut
from app.backends.sse import SSEError, SSEParser
from app.errors import BackendTimeout, BadGateway

if TYPE_CHECKING:
    import urllib3

    from app.backends import Backend

# Each read allocates this much and gives back what it did not fill: with
# thousands of streams reading at once, 64 KB reads left the heap ~10 KB
# per stream larger than 8 KB reads do (docs/BENCHMARKS.md). A token's SSE
# line is a few hundred bytes; a longer burst takes more than one read.
READ_SIZE = 8 * 1024
DRAIN_TIMEOUT = 1.0  # after [DONE], the rest of a body is a few bytes
MAX_DRAIN_BYTES = 64 * 1024


class ChatStream:
    """An open streaming reply: iterate `payloads(wake_every)`, then `close()`."""

    def __init__(self, backend: Backend, raw: urllib3.HTTPResponse) -> None:
        self.backend = backend
        self.raw = raw
        # What http.client read ahead with the headers is taken from its
        # buffer once; after that the socket is read directly.
        self.buffered: Any = raw._fp.fp
        self.sock = _socket_of(self.buffered)
        self.reusable = not raw._fp.will_close
        self.decoder = BodyDecoder(chunked=raw.chunked, length=raw.length_remaining)
        self.parser = SSEParser()
        self.closed = False  # by `close()`: a reader woken by it was cut, not failed

    def payloads(self, wake_every: float) -> Iterator[list[str] | None]:
        """Yield the `data:` payloads of each read until `[DONE]`; None after a silent `wake_every`.

        One list per read off the socket (often several tokens under load),
        so the relay can send what one read brought in one write.
        """
        if self.sock is None:
            raise BadGateway(f"Backend '{self.backend.name}' stream has no connection")
        read_timeout = self.backend.settings.read_timeout
        self.sock.settimeout(min(wake_every, read_timeout))
        heard_at = time.monotonic()
        try:
            while not (self.parser.done or self.decoder.complete):
                try:
                    data = self._read()
                except TimeoutError:
                    if time.monotonic() - heard_at >= read_timeout:
                        raise
                    yield None
                    continue
                heard_at = time.monotonic()
                if not data:
                    self.decoder.end_of_stream()
                    return
                payloads = self.parser.feed(self.decoder.feed(data))
                if payloads:
                    yield payloads
        except TimeoutError as exc:
            self.backend.failed("stream_timeout")
            raise BackendTimeout(
                f"Backend '{self.backend.name}' sent nothing for {read_timeout:g}s"
            ) from exc
        except (OSError, BodyError, SSEError) as exc:
            if self.closed:
                raise CallCut(f"The stream of backend '{self.backend.name}' was cut") from exc
            self.backend.failed("stream_broken")
            raise BadGateway(f"Backend '{self.backend.name}' stream broke off: {exc}") from exc

    def close(self) -> None:
        """End the call: hand a finished connection back to the pool, else cut it.

        An abandoned stream has its socket shut down: that wakes a reader
        blocked on it in another greenlet, and the backend sees the
        connection end at once.
        """
        self.closed = True
        if self.parser.done and not self.decoder.complete:
            self._drain()
        raw = self.raw
        if self.decoder.complete and self.reusable:
            raw._fp.close()  # http.client's response: its body is over (if not closed yet)
            raw.release_conn()
            return
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
        raw.close()  # closes the connection too: it is not reused
        raw.release_conn()

    def _read(self) -> bytes:
        if self.buffered is not None:
            buffered, self.buffered = self.buffered, None
            try:
                # One raw read at most, and only when nothing is buffered: so
                # a timeout here leaves nothing behind in http.client's buffer.
                return buffered.read1(READ_SIZE)
            finally:
                self._let_go_of_http_client()
        return self.sock.recv(READ_SIZE)  # type: ignore[union-attr]

    def _let_go_of_http_client(self) -> None:
        """Free http.client's response and its 8 KB buffer for the rest of a long stream.

        Only while urllib3's connection still holds the socket: a backend that
        said `Connection: close` handed its socket to that response alone.
        """
        if self.reusable:
            self.raw._fp.close()

    def _drain(self) -> None:
        """Read the end of a body whose last event came (a few bytes), briefly."""
        drained = 0
        with contextlib.suppress(OSError, BodyError):
            self.sock.settimeout(DRAIN_TIMEOUT)  # type: ignore[union-attr]
            while not self.decoder.complete and drained <= MAX_DRAIN_BYTES:
                data = self._read()
                if not data:
                    return
                drained += len(data)
                self.decoder.feed(data)


def _socket_of(buffered: Any) -> socket.socket | None:
    """The socket under http.client's buffered reader (urllib3 lets go of it on a close)."""
    return getattr(getattr(buffered, "raw", None), "_sock", None)
