"""One response's run, pushed from outside: `start`, `feed` what the backend sent, `finish`.

The loop owns the response's event stream (a `ResponseEmitter`) and the
backend turn being read (the backend's dialect makes it). Whoever reads
the backend's body pushes each read into `feed` and sends the events it
returns: the HTTP view's relay, a background runner, an ext_proc process
handed the body by Envoy. A turn that ends with calls of hosted tools (the
gateway's own, app/services/hosted.py) has them run in `finish`, and the
next turn is begun on the same emitter: `next_outgoing` is then the call
the driver must make and feed in turn, with one sequence of events and the
usage of every turn summed.

It does no I/O: the driver reads, writes and stores, and stores the
response between the events `finish`, `fail` or `cancel` return and the
`terminal_event`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.backends.dialects.base import Outgoing, Turn
from app.errors import BadGateway
from app.protocol.responses.events import Event, Events, ResponseEmitter

if TYPE_CHECKING:
    from app.services.prepare import Prepared

INCOMPLETE_STREAM = "The backend stream ended before the answer was complete."


class ResponseLoop:
    """A response being answered: its emitter, and the backend turn it reads."""

    def __init__(self, emitter: ResponseEmitter, turn: Turn, prepared: Prepared | None = None):
        self.emitter = emitter
        self.turn = turn
        self.prepared = prepared
        self.next_outgoing: Outgoing | None = None  # a hosted tool ran: the next call
        self.told: list[dict[str, Any]] = []  # the turns so far, as the next one is told
        self.turn_start = 0  # where this turn's output begins

    @classmethod
    def for_request(cls, prepared: Prepared) -> ResponseLoop:
        """The loop of a prepared request."""
        emitter = ResponseEmitter(prepared.response, finalize_item=prepared.seal)
        if prepared.hosted is not None:
            emitter.annotate = prepared.hosted.annotate
        return cls(emitter, prepared.backend.turn(prepared.outgoing, emitter), prepared)

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
        """The backend's answer is over: the events that close the output, or (when it
        called hosted tools) those of running them, with `next_outgoing` the next call."""
        if not self.turn.finished:
            raise BadGateway(INCOMPLETE_STREAM)
        self.next_outgoing = None
        incomplete = self.turn.end()
        events = self.emitter.close_item("incomplete" if incomplete else "completed")
        calls, self.emitter.hosted_calls = self.emitter.hosted_calls, []
        prepared = self.prepared
        if not calls or incomplete or prepared is None or prepared.hosted is None:
            return events + self.emitter.finish(incomplete)
        events += self.continue_after(calls, stream=True)
        if self.next_outgoing is None:
            return events + self.emitter.finish(None)
        self.turn = prepared.backend.turn(self.next_outgoing, self.emitter)
        return events

    def continue_after(self, calls: list[dict[str, Any]], stream: bool) -> Events:
        """Run the hosted calls a turn ended with; `next_outgoing` is then the next call,
        or None when the turn also called the client's own tools (the response ends)."""
        events = self._run_hosted(calls)
        if _calls_for_the_client(self.emitter.output[self.turn_start :]):
            self.next_outgoing = None
            return events
        self.turn_start = len(self.emitter.output)
        assert self.prepared is not None
        self.next_outgoing = self.prepared.next_turn(self.told, stream=stream)
        return events

    def _run_hosted(self, calls: list[dict[str, Any]]) -> Events:
        """Run the hosted calls a turn ended with; note what the next turn is told."""
        prepared = self.prepared
        assert prepared is not None and prepared.hosted is not None
        hosted = prepared.hosted
        told = [
            item
            for item in self.emitter.output[self.turn_start :]
            if item["type"] != "file_search_call"
        ]
        events: Events = []
        for call in calls:
            if hosted.exhausted:
                told += skipped(call)
                continue
            ran, items = hosted.run(call, self.emitter, fallback_query(prepared.input_items))
            events += ran
            told += items
        self.told += told
        return events

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


CLIENT_CALLS = ("function_call", "custom_tool_call", "local_shell_call")
NOT_RUN = "Not run: this response reached its max_tool_calls."


def _calls_for_the_client(items: list[dict[str, Any]]) -> bool:
    """Whether the turn also called the client's own tools: the response ends for it."""
    return any(item["type"] in CLIENT_CALLS for item in items)


def skipped(call: dict[str, Any]) -> list[dict[str, Any]]:
    """A hosted call past `max_tool_calls`, as the next turn is told of it."""
    return [
        {
            "type": "function_call",
            "call_id": call["call_id"],
            "name": call["name"],
            "arguments": call.get("arguments") or "{}",
        },
        {"type": "function_call_output", "call_id": call["call_id"], "output": NOT_RUN},
    ]


def fallback_query(items: list[dict[str, Any]]) -> str:
    """The last thing the user said: what to search for when a call names no query."""
    for item in reversed(items):
        if item.get("type") == "message" and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            texts = [p.get("text", "") for p in content or () if p.get("type") == "input_text"]
            if any(texts):
                return " ".join(texts)
    return "*"


def annotate_answer(items: list[dict[str, Any]], annotate: Any) -> None:
    """Give the text of whole answer items (not streamed) their annotations."""
    for item in items:
        if item["type"] != "message":
            continue
        for part in item["content"]:
            if part.get("type") == "output_text":
                part["annotations"] = annotate(part["text"])
