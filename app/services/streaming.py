"""Use case: a streamed response, from the backend's chunks to the client's events.

The backend call runs in a reader (a greenlet under gevent) so the stream
never goes silent: while the backend thinks, a `response.in_progress`
event goes out every `keepalive_seconds`. Errors before the backend
answered become an HTTP error; later ones end the stream in
`response.failed`. A client that goes away closes the backend call at
once, and the response is stored as cancelled with what was produced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from app.backends import ChatStream
from app.backends.heartbeat import Heartbeat
from app.errors import BadGateway, GatewayError, StoreError
from app.protocol.stream import StreamError, StreamTranslator
from app.services.prepare import Prepared, persist

OPENED = object()


class Upstream:
    """The backend call, opened by whoever iterates it, closable from anywhere."""

    def __init__(self, prepared: Prepared, client_key: str | None) -> None:
        self.prepared = prepared
        self.client_key = client_key
        self.stream: ChatStream | None = None
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        self.stream = self.prepared.backend.stream(self.prepared.chat.body, self.client_key)
        if self.closed:
            self.stream.close()
            return
        yield OPENED
        yield from self.stream

    def close(self) -> None:
        self.closed = True
        if self.stream is not None:
            self.stream.close()


def open_stream(
    prepared: Prepared, client_key: str | None, keepalive_seconds: float
) -> Iterator[dict[str, Any]]:
    """Start the backend call; raise its error if it fails before the keep-alive interval."""
    upstream = Upstream(prepared, client_key)
    chunks = iter(Heartbeat(upstream, keepalive_seconds))
    try:
        next(chunks)  # OPENED, or None when the backend is slow to answer at all
    except BaseException:
        upstream.close()
        raise
    return stream_events(prepared, upstream, chunks)


def stream_events(
    prepared: Prepared,
    upstream: Upstream,
    chunks: Iterator[Any],
    cancelled: Callable[[], bool] = lambda: False,
) -> Iterator[dict[str, Any]]:
    """Translate the backend stream; store the response before its terminal event.

    `chunks` yields None when the backend has been silent for a while: that
    becomes a keep-alive event, and a chance to notice `cancelled()`.
    """
    translator = StreamTranslator(
        prepared.response,
        prepared.chat.tool_kinds,
        prepared.backend.settings.reasoning_field,
        finalize_item=prepared.seal,
    )
    try:
        yield from translator.start()
        for data in chunks:
            if cancelled():
                yield from translator.cancel()
                break
            if data is None:
                yield translator.keepalive()
            elif data is not OPENED:
                yield from translator.feed_line(data)
        else:
            if not translator.finished:
                raise BadGateway("The backend stream ended before the answer was complete.")
            yield from translator.finish()
        persist(prepared)
    except (GatewayError, StreamError) as exc:
        error = exc if isinstance(exc, GatewayError) else BadGateway(str(exc))
        yield from translator.fail(error.to_dict())
        _persist_quietly(prepared)
    except GeneratorExit:  # the client went away: nobody to send events to
        translator.cancel()
        _persist_quietly(prepared)
        raise
    finally:
        upstream.close()
        _close(chunks)
    yield translator.terminal_event()


def _close(chunks: Iterator[Any]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


def _persist_quietly(prepared: Prepared) -> None:
    """Store a failed or cancelled response; a store error here was already logged."""
    with contextlib.suppress(StoreError):
        persist(prepared)
