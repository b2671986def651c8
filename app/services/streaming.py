"""Use case: a streamed response, from the backend's body to the client's events.

The backend call runs here (`Upstream`); what it reads is pushed into the
response's loop (app/services/response_loop.py), which turns it into
events. Events go out in batches: what one read off the backend brought (often
several tokens under load) is sent to the client in one write. The
stream never goes silent: while the backend thinks, a
`response.in_progress` event goes out every `keepalive_seconds`. Until
the backend's headers arrive the call runs in a thread (a greenlet under
gevent) that the relay waits on; after that the relay reads the body
itself, waking at the same interval. Errors before the backend answered
become an HTTP error; later ones end the stream in `response.failed`. A
client that goes away closes the backend call at once, and the response
is stored as cancelled with what was produced.
"""

from __future__ import annotations

import _thread
import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from app.auth.principal import Principal
from app.backends import BodyStream, CallCut, CallHandle
from app.errors import BadGateway, GatewayError, StoreError
from app.services.prepare import Prepared, persist
from app.services.response_loop import ResponseLoop

log = logging.getLogger(__name__)

OPENED = object()
Events = list[dict[str, Any]]  # one batch: sent to the client in one write


class Upstream:
    """The backend call: iterate it for OPENED, then the bytes of each read; None while silent.

    It can be closed from anywhere: while the call still waits for the
    backend's headers, its socket is cut.
    """

    def __init__(self, prepared: Prepared, principal: Principal, wake_every: float) -> None:
        self.prepared = prepared
        self.principal = principal
        self.wake_every = wake_every
        self.stream: BodyStream | None = None
        self.error: BaseException | None = None
        self.closed = False
        self.opened = threading.Event()
        self.handle = CallHandle()
        self.lock = threading.Lock()

    def __iter__(self) -> Iterator[Any]:
        # The body's reads are chained on, not delegated to by `yield from`:
        # one generator less for every token to pass through, and for every
        # waiting stream to keep on its greenlet's stack.
        return itertools.chain.from_iterable(self._phases())

    def _phases(self) -> Iterator[Iterable[Any]]:
        yield self._opening()
        if self.stream is not None:
            yield self.stream.reads(self.wake_every)

    def _opening(self) -> Iterator[Any]:
        # A bare thread (a greenlet under gevent): threading.Thread's start
        # handshake (a switch there and back) and its locks cost every stream,
        # and are not needed: the call reports back through `opened`.
        _thread.start_new_thread(self._open, ())
        while not self.opened.wait(self.wake_every):
            yield None
        if self.error is not None and not self.closed:
            raise self.error
        if self.stream is not None:  # else closed while opening
            yield OPENED

    def _open(self) -> None:
        outgoing = self.prepared.outgoing
        try:
            stream = self.prepared.backend.open_stream(outgoing, self.principal, self.handle)
        except BaseException as exc:  # handed to the consumer, raised there
            self.error = exc
        else:
            outgoing.body = {}  # sent: a long stream need not hold the whole history
            with self.lock:
                if self.closed:
                    stream.close()
                else:
                    self.stream = stream
        finally:
            self.opened.set()

    def close(self, ended: bool = False) -> None:
        """End the call (`ended`: the body's last event came, so its connection can be kept)."""
        with self.lock:
            self.closed = True
            if self.stream is not None:
                self.stream.close(ended)
            elif not self.opened.is_set():
                self.handle.cut()


def open_stream(
    prepared: Prepared, principal: Principal, keepalive_seconds: float
) -> Iterator[Events]:
    """Start the backend call; raise its error if it fails before the keep-alive interval."""
    upstream = Upstream(prepared, principal, keepalive_seconds)
    chunks = iter(upstream)
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
    calling: Callable[[Upstream], None] = lambda upstream: None,
) -> Iterator[Events]:
    """Translate the backend stream into batches of events; store before the terminal event.

    `chunks` yields None when the backend has been silent for a while: that
    becomes a keep-alive event, and a chance to notice `cancelled()`. The
    events that close the output go out with the terminal event, in one
    write, once the response is stored. When the model called a hosted tool,
    the loop runs it and the next call is made here (`calling` is told of
    each new one, so that it can be cut), its events in the same stream.
    """
    loop = ResponseLoop.for_request(prepared)
    batch: Events = []  # what the current read brought: events of a failing read go out too
    closing: Events = []
    try:
        yield loop.start()
        while True:
            stopped = False
            for data in chunks:
                if cancelled():
                    stopped = True
                    break
                if data is None:
                    yield [loop.keepalive()]
                elif data is not OPENED:
                    loop.feed(data, batch)
                    yield batch
                    batch = []
                    if loop.done:  # the body's last event: nothing more to read
                        break
            else:
                stopped = cancelled()  # the call was cut for a cancel: its end is no failure
            read_whole = loop.done  # the turn's body was read to its end (before `finish`)
            closing = loop.cancel() if stopped else loop.finish()
            if loop.next_outgoing is None:
                break
            yield closing  # the hosted tools' events; the next turn follows
            closing = []
            upstream.close(ended=read_whole)
            prepared.outgoing = loop.next_outgoing
            upstream = Upstream(prepared, upstream.principal, upstream.wake_every)
            calling(upstream)
            chunks = iter(upstream)
        persist(prepared)
    except (GatewayError, CallCut) as exc:
        # The store may fail after the output was closed: its events still go out.
        if cancelled():  # the call was cut for a cancel
            closing = [*closing, *batch, *loop.cancel()]
        else:
            error = exc if isinstance(exc, GatewayError) else BadGateway(str(exc))
            closing = [*closing, *batch, *loop.fail(error.to_dict())]
        _persist_quietly(prepared)
    except Exception as exc:  # the gateway's own failure: the response fails, and settles
        log.exception("stream of response %s failed", prepared.response["id"])
        failure = GatewayError(f"The gateway failed while streaming ({exc.__class__.__name__}).")
        closing = [*closing, *batch, *loop.fail(failure.to_dict())]
        _persist_quietly(prepared)
    except GeneratorExit:  # the client went away: nobody to send events to
        loop.cancel()
        if prepared.admission is not None:
            prepared.admission.disconnected = True
        _persist_quietly(prepared)
        raise
    finally:
        upstream.close(ended=loop.done)
    yield [*closing, loop.terminal_event()]


def _persist_quietly(prepared: Prepared) -> None:
    """Store a failed or cancelled response; a store error here was already logged."""
    with contextlib.suppress(StoreError):
        persist(prepared)
