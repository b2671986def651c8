"""The streaming state machine: Chat Completions chunks -> Responses events.

`StreamTranslator` owns the life of every output item and content part:
each is `added` before its deltas and `done` before the next one opens,
ids stay the same from `added` to the final response, and
`sequence_number` counts from 0 without gaps. The caller persists
`translator.response` between `finish()`/`fail()` and `terminal_event()`,
so the stored response is committed before the client sees the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app import compact_json
from app.errors import backend_words
from app.protocol.ids import new_call_id
from app.protocol.response import (
    fail_response,
    finish_response,
    message_item,
    output_text_part,
    reasoning_item,
    refusal_part,
    tool_call_item,
)

TERMINAL_EVENTS = {
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "failed": "response.failed",
    "cancelled": "response.incomplete",
}


JOIN_EVERY = 16  # deltas of an open item kept apart before they are joined
# How an open item's text arrives, as events: what `resume` adds up again.
DELTA_EVENTS = frozenset(
    {
        "response.output_text.delta",
        "response.reasoning_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
    }
)
OPEN_KINDS = {"reasoning": "reasoning", "message": "message"}  # else a tool call


class StreamError(ValueError):
    """The backend sent a chunk that is not valid Chat Completions JSON."""


class _OpenItem:
    """The one output item currently being streamed, with its text so far."""

    def __init__(self, kind: str, output_index: int, item: dict[str, Any], key: Any = None):
        self.kind = kind
        self.output_index = output_index
        self.item = item
        self.key = key
        self.blocks: list[str] = []  # deltas joined JOIN_EVERY at a time
        self.pieces: list[str] = []  # the deltas since

    def add(self, text: str) -> None:
        """Keep a delta for the item's final text."""
        # A string object per delta costs ~50 bytes more than its text, for as
        # long as the stream lasts: so deltas are joined in groups.
        self.pieces.append(text)
        if len(self.pieces) >= JOIN_EVERY:
            self.blocks.append("".join(self.pieces))
            self.pieces.clear()

    @property
    def text(self) -> str:
        return "".join(self.blocks) + "".join(self.pieces)


class StreamTranslator:
    """Feed Chat chunks in, get Responses events out."""

    def __init__(
        self,
        response: dict[str, Any],
        tool_kinds: dict[str, str],
        reasoning_field: str,
        finalize_item: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.response = response
        self.finalize_item = finalize_item or (lambda item: item)
        self.tool_kinds = tool_kinds
        self.reasoning_fields = (reasoning_field, "reasoning_content", "reasoning")
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.current: _OpenItem | None = None
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    @classmethod
    def resume(
        cls, response: dict[str, Any], events: list[dict[str, Any]], tool_kinds: dict[str, str]
    ) -> StreamTranslator:
        """A translator in the state a stream's first `events` (as sent) left it in.

        What follows from it (`fail`, `cancel`, `terminal_event`) continues the
        same stream: the next sequence number, the open item closed with the
        text its deltas carried. A custom tool call's input sent no deltas: it
        closes empty.
        """
        translator = cls(response, tool_kinds, "reasoning_content")
        for event in events:
            translator._replay(event)
        return translator

    def _replay(self, event: dict[str, Any]) -> None:
        self.sequence = event["sequence_number"] + 1
        kind = event["type"]
        if kind == "response.output_item.added":
            item = event["item"]
            opened = OPEN_KINDS.get(item["type"], "tool")
            self.current = _OpenItem(opened, event["output_index"], item)
        elif self.current is None:
            return
        elif kind == "response.content_part.added" and event["part"]["type"] == "refusal":
            self.current.kind = "refusal"
        elif kind in DELTA_EVENTS:
            self.current.add(event["delta"])
        elif kind == "response.output_item.done":
            self.output.append(event["item"])
            self.current = None

    def event(self, event_type: str, **fields: Any) -> dict[str, Any]:
        """Return the next event of the stream, numbered."""
        event = {"type": event_type, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def start(self) -> list[dict[str, Any]]:
        """Return `response.created` and `response.in_progress`."""
        return [
            self.event("response.created", response=self.snapshot()),
            self.event("response.in_progress", response=self.snapshot()),
        ]

    def keepalive(self) -> dict[str, Any]:
        """Return a `response.in_progress` event: clients count it, unlike SSE comments."""
        return self.event("response.in_progress", response=self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        return {**self.response, "output": list(self.output)}

    def feed_line(self, data: str) -> list[dict[str, Any]]:
        """Translate one SSE `data:` payload from the backend."""
        try:
            chunk = compact_json.loads(data)
        except ValueError as exc:
            raise StreamError(f"invalid JSON in backend stream: {data[:200]!r}") from exc
        if not isinstance(chunk, dict):
            raise StreamError("backend stream chunk is not a JSON object")
        return self.feed(chunk)

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """Translate one Chat completion chunk (an `error` object instead ends the stream)."""
        if chunk.get("error") and not chunk.get("choices"):
            error = chunk["error"]
            said = error.get("message") if isinstance(error, dict) else error
            raise StreamError(f"the backend stopped with an error: {backend_words(str(said))}")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        events: list[dict[str, Any]] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            for field in self.reasoning_fields:
                if delta.get(field):
                    events += self._reasoning_delta(delta[field])
                    break
            for kind in ("content", "refusal"):
                if delta.get(kind):
                    events += self._text_delta(delta[kind], refusal=kind == "refusal")
            for call in delta.get("tool_calls") or ():
                events += self._tool_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    @property
    def finished(self) -> bool:
        """Whether the backend said how the answer ended (a cut stream never does)."""
        return self.finish_reason is not None

    def finish(self) -> list[dict[str, Any]]:
        """Close the open item and complete `self.response` (not yet announced)."""
        events = self._close()
        finish_response(self.response, self.output, self.usage, self.finish_reason)
        return events

    def fail(self, error: dict[str, Any]) -> list[dict[str, Any]]:
        """Close the open item as incomplete and mark `self.response` failed."""
        events = self._close(status="incomplete")
        fail_response(self.response, self.output, error)
        return events

    def cancel(self) -> list[dict[str, Any]]:
        """Close the open item as incomplete and mark `self.response` cancelled."""
        events = self._close(status="incomplete")
        finish_response(self.response, self.output, self.usage, None)
        self.response["status"] = "cancelled"
        return events

    def terminal_event(self) -> dict[str, Any]:
        """Return the one event that ends the stream."""
        return self.event(TERMINAL_EVENTS[self.response["status"]], response=self.snapshot())

    def _open(self, kind: str, item: dict[str, Any], key: Any = None) -> list[dict[str, Any]]:
        events = self._close()
        self.current = _OpenItem(kind, len(self.output), item, key)
        events.append(self._item_event("response.output_item.added", item))
        return events

    def _item_event(self, event_type: str, item: dict[str, Any]) -> dict[str, Any]:
        return self.event(event_type, output_index=self.current.output_index, item=item)

    def _item_field_event(self, event_type: str, **fields: Any) -> dict[str, Any]:
        current = self.current
        return self.event(
            event_type, item_id=current.item["id"], output_index=current.output_index, **fields
        )

    def _part_event(self, event_type: str, **fields: Any) -> dict[str, Any]:
        return self._item_field_event(event_type, content_index=0, **fields)

    def _reasoning_delta(self, text: str) -> list[dict[str, Any]]:
        events = []
        if self.current is None or self.current.kind != "reasoning":
            item = reasoning_item("")
            events += self._open("reasoning", {**item, "content": [], "status": "in_progress"})
            part = {"type": "reasoning_text", "text": ""}
            events.append(self._part_event("response.content_part.added", part=part))
        self.current.add(text)
        events.append(self._part_event("response.reasoning_text.delta", delta=text))
        return events

    def _text_delta(self, text: str, refusal: bool) -> list[dict[str, Any]]:
        kind = "refusal" if refusal else "message"
        events = []
        if self.current is None or self.current.kind != kind:
            item = message_item("", status="in_progress")
            events += self._open(kind, {**item, "content": []})
            part = refusal_part("") if refusal else output_text_part("")
            events.append(self._part_event("response.content_part.added", part=part))
        self.current.add(text)
        if refusal:
            events.append(self._part_event("response.refusal.delta", delta=text))
        else:
            events.append(self._part_event("response.output_text.delta", delta=text, logprobs=[]))
        return events

    def _tool_delta(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        index = call.get("index", 0)
        function = call.get("function") or {}
        events = []
        if self.current is None or self.current.kind != "tool" or self.current.key != index:
            name = function.get("name") or ""
            kind = self.tool_kinds.get(name, "function")
            item = tool_call_item(kind, name, call.get("id") or new_call_id(), "")
            if "status" in item:
                item["status"] = "in_progress"
            if kind == "local_shell":
                item["action"]["command"] = []
            events += self._open("tool", item, key=index)
        arguments = function.get("arguments") or ""
        if arguments:
            self.current.add(arguments)
            if self.current.item["type"] == "function_call":
                events.append(
                    self._item_field_event(
                        "response.function_call_arguments.delta", delta=arguments
                    )
                )
        return events

    def _close(self, status: str | None = None) -> list[dict[str, Any]]:
        current = self.current
        if current is None:
            return []
        if status is None:
            status = (
                "incomplete" if self.finish_reason in ("length", "content_filter") else "completed"
            )
        closers = {
            "reasoning": self._close_reasoning,
            "message": self._close_message,
            "refusal": self._close_refusal,
        }
        events, item = closers.get(current.kind, self._close_tool)(current)
        if "status" in item:
            item["status"] = status
        item = self.finalize_item(item)
        self.output.append(item)
        events.append(self._item_event("response.output_item.done", item))
        self.current = None
        return events

    def _close_reasoning(self, current: _OpenItem) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        text = current.text
        part = {"type": "reasoning_text", "text": text}
        events = [
            self._part_event("response.reasoning_text.done", text=text),
            self._part_event("response.content_part.done", part=part),
        ]
        return events, reasoning_item(text, item_id=current.item["id"])

    def _close_message(self, current: _OpenItem) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        text = current.text
        events = [
            self._part_event("response.output_text.done", text=text, logprobs=[]),
            self._part_event("response.content_part.done", part=output_text_part(text)),
        ]
        return events, message_item(text, item_id=current.item["id"])

    def _close_refusal(self, current: _OpenItem) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        text = current.text
        events = [
            self._part_event("response.refusal.done", refusal=text),
            self._part_event("response.content_part.done", part=refusal_part(text)),
        ]
        return events, message_item(text, item_id=current.item["id"], refusal=True)

    def _close_tool(self, current: _OpenItem) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        opened = current.item
        name = opened.get("name", "local_shell")
        kind = self.tool_kinds.get(name, "function")
        item = tool_call_item(kind, name, opened["call_id"], current.text, item_id=opened["id"])
        if item["type"] == "function_call":
            events = [
                self._item_field_event(
                    "response.function_call_arguments.done", arguments=item["arguments"]
                )
            ]
        elif item["type"] == "custom_tool_call":
            events = [
                self._item_field_event(
                    "response.custom_tool_call_input.delta", delta=item["input"]
                ),
                self._item_field_event("response.custom_tool_call_input.done", input=item["input"]),
            ]
        else:
            events = []
        return events, item
