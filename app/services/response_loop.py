"""One response's run, pushed from outside: `start`, `feed` what the backend sent, `finish`.

The loop owns the response's event stream (a `ResponseEmitter`) and the
backend turn being read (the backend's dialect makes it). Whoever reads
the backend's body pushes each read into `feed` and sends the events it
returns: the HTTP view's relay, a background runner, an ext_proc process
handed the body by Envoy. So far a response is one turn; hosted tools the
gateway runs itself will end a turn with a call to run and start the next
one here, on the same emitter, with one sequence of events and the usage
of every turn summed.

It does no I/O: the driver reads, writes and stores, and stores the
response between the events `finish`, `fail` or `cancel` return and the
`terminal_event`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.backends.dialects.base import Turn
from app.errors import BadGateway
from app.protocol.responses.events import Event, Events, ResponseEmitter

if TYPE_CHECKING:
    from app.services.prepare import Prepared

INCOMPLETE_STREAM = "The backend stream ended before the answer was complete."


class ResponseLoop:
    """A response being answered: its emitter, and the backend turn it reads."""

    def __init__(self, emitter: ResponseEmitter, turn: Turn) -> None:
        self.emitter = emitter
        self.turn = turn

    @classmethod
    def for_request(cls, prepared: Prepared) -> ResponseLoop:
        """The loop of a prepared request."""
        emitter = ResponseEmitter(prepared.response, finalize_item=prepared.seal)
        return cls(emitter, prepared.backend.turn(prepared.outgoing, emitter))

    @property
    def response(self) -> dict[str, Any]:
        return self.emitter.response

    @property
    def done(self) -> bool:
        """Whether the backend said its body holds no more events: stop reading."""
        return self.turn.done

    def start(self) -> Events:
        """The events that open the stream."""
        return self.emitter.start()

    def keepalive(self) -> Event:
        """An event for a client waiting while the backend is silent."""
        return self.emitter.keepalive()

    def feed(self, data: bytes, events: Events) -> Events:
        """Add to `events` (and return) those what one read off the backend brought makes."""
        return self.turn.feed(data, events)

    def finish(self) -> Events:
        """The backend's answer is over: the events that close the output."""
        if not self.turn.finished:
            raise BadGateway(INCOMPLETE_STREAM)
        return self.emitter.finish(self.turn.end())

    def fail(self, error: dict[str, Any]) -> Events:
        """The response failed with `error`: the events that close what was open."""
        return self.emitter.fail(error)

    def cancel(self) -> Events:
        """The response was cancelled (or its client left): close what was open."""
        self.turn.end()  # what the backend did bill so far still counts
        return self.emitter.cancel()

    def terminal_event(self) -> Event:
        """The one event that ends the stream."""
        return self.emitter.terminal_event()
