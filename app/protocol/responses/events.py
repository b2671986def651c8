"""The Responses API event stream of one response: `ResponseEmitter` owns it.

It numbers every event (`sequence_number` from 0, no gaps), opens and
closes output items and their content parts in the order the API emits
them (each `added` before its deltas and `done` before the next one
opens, ids the same from `added` to the final response), sums the usage
of every backend turn, and makes the one terminal event. A dialect's turn
translator (app/protocol/chat/stream.py) calls it as deltas arrive; it
knows nothing of any backend's wire format. The caller stores the
response between `finish()`/`fail()`/`cancel()` and `terminal_event()`,
so it is committed before the client sees the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.protocol.ids import new_call_id
from app.protocol.responses.objects import (
    complete_response,
    fail_response,
    message_item,
    output_text_part,
    reasoning_item,
    refusal_part,
    tool_call_item,
)

Event = dict[str, Any]
Events = list[Event]

# The event that ends a stream, by the response's final status.
TERMINAL_EVENTS = {
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "failed": "response.failed",
    "cancelled": "response.incomplete",
}
TERMINAL_EVENT_TYPES = frozenset(TERMINAL_EVENTS.values())
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
TOOL_KIND_OF_ITEM = {"custom_tool_call": "custom", "local_shell_call": "local_shell"}
USAGE_TOTALS = ("input_tokens", "output_tokens", "total_tokens")
USAGE_DETAILS = (
    ("input_tokens_details", ("cached_tokens", "cache_write_tokens")),
    ("output_tokens_details", ("reasoning_tokens",)),
)


class _OpenItem:
    """The one output item being streamed, with its text so far."""

    def __init__(
        self,
        kind: str,
        output_index: int,
        item: dict[str, Any],
        key: Any = None,
        tool_kind: str = "function",
    ):
        self.kind = kind
        self.output_index = output_index
        self.item = item
        self.key = key  # which of a turn's parallel tool calls it is
        self.tool_kind = tool_kind
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


class ResponseEmitter:
    """One response's events: its lifecycle, its items, its usage across turns."""

    def __init__(
        self,
        response: dict[str, Any],
        finalize_item: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.response = response
        self.finalize_item = finalize_item or (lambda item: item)
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.current: _OpenItem | None = None
        self.usage: dict[str, Any] | None = None
        # Calls of tools the gateway runs itself (tool kind "hosted"): kept, not shown.
        self.hosted_calls: list[dict[str, Any]] = []
        # The annotations of an answer's text, given its text (file citations).
        self.annotate: Callable[[str], list[dict[str, Any]]] | None = None

    @classmethod
    def resume(cls, response: dict[str, Any], events: Events) -> ResponseEmitter:
        """An emitter in the state a stream's first `events` (as sent) left it in.

        What follows from it (`fail`, `cancel`, `terminal_event`) continues the
        same stream: the next sequence number, the open item closed with the
        text its deltas carried. A custom tool call's input sent no deltas: it
        closes empty.
        """
        emitter = cls(response)
        for event in events:
            emitter._replay(event)
        return emitter

    def _replay(self, event: Event) -> None:
        self.sequence = event["sequence_number"] + 1
        kind = event["type"]
        if kind == "response.output_item.added":
            item = event["item"]
            opened = OPEN_KINDS.get(item["type"], "tool")
            tool_kind = TOOL_KIND_OF_ITEM.get(item["type"], "function")
            self.current = _OpenItem(opened, event["output_index"], item, tool_kind=tool_kind)
        elif self.current is None:
            return
        elif kind == "response.content_part.added" and event["part"]["type"] == "refusal":
            self.current.kind = "refusal"
        elif kind in DELTA_EVENTS:
            self.current.add(event["delta"])
        elif kind == "response.output_item.done":
            self.output.append(event["item"])
            self.current = None

    # --- the lifecycle ----------------------------------------------------------

    def event(self, event_type: str, **fields: Any) -> Event:
        """Return the next event of the stream, numbered."""
        event = {"type": event_type, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def start(self) -> Events:
        """Return `response.created` and `response.in_progress`."""
        return [
            self.event("response.created", response=self.snapshot()),
            self.event("response.in_progress", response=self.snapshot()),
        ]

    def keepalive(self) -> Event:
        """Return a `response.in_progress` event: clients count it, unlike SSE comments."""
        return self.event("response.in_progress", response=self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        return {**self.response, "output": list(self.output)}

    def add_usage(self, usage: dict[str, Any]) -> None:
        """Count one backend turn's usage (Responses-shaped) into the response's."""
        if self.usage is None:
            self.usage = usage
            return
        total = self.usage
        for name in USAGE_TOTALS:
            total[name] += usage[name]
        for group, names in USAGE_DETAILS:
            for name in names:
                total[group][name] += usage[group][name]

    def finish(self, incomplete_reason: str | None = None) -> Events:
        """Close the open item and complete `self.response` (not yet announced)."""
        events = self.close_item("incomplete" if incomplete_reason else "completed")
        complete_response(self.response, self.output, self.usage, incomplete_reason)
        return events

    def fail(self, error: dict[str, Any]) -> Events:
        """Close the open item as incomplete and mark `self.response` failed."""
        events = self.close_item("incomplete")
        fail_response(self.response, self.output, error)
        return events

    def cancel(self) -> Events:
        """Close the open item as incomplete and mark `self.response` cancelled."""
        events = self.close_item("incomplete")
        complete_response(self.response, self.output, self.usage, None)
        self.response["status"] = "cancelled"
        return events

    def terminal_event(self) -> Event:
        """Return the one event that ends the stream."""
        return self.event(TERMINAL_EVENTS[self.response["status"]], response=self.snapshot())

    # --- items, as their deltas arrive ------------------------------------------

    def reasoning_delta(self, text: str) -> Events:
        events = []
        if self.current is None or self.current.kind != "reasoning":
            item = {**reasoning_item(""), "content": [], "status": "in_progress"}
            events += self._open("reasoning", item)
            part = {"type": "reasoning_text", "text": ""}
            events.append(self._part_event("response.content_part.added", part=part))
        self.current.add(text)
        events.append(self._part_event("response.reasoning_text.delta", delta=text))
        return events

    def text_delta(self, text: str, refusal: bool = False) -> Events:
        kind = "refusal" if refusal else "message"
        events = []
        if self.current is None or self.current.kind != kind:
            item = {**message_item("", status="in_progress"), "content": []}
            events += self._open(kind, item)
            part = refusal_part("") if refusal else output_text_part("")
            events.append(self._part_event("response.content_part.added", part=part))
        self.current.add(text)
        if refusal:
            events.append(self._part_event("response.refusal.delta", delta=text))
        else:
            events.append(self._part_event("response.output_text.delta", delta=text, logprobs=[]))
        return events

    def tool_call_delta(
        self, key: Any, tool_kind: str, name: str, call_id: str | None, arguments: str
    ) -> Events:
        """Part of tool call `key` of this turn: its head when new, then its arguments.

        A hosted tool's call (one the gateway runs) sends no events: it is kept
        whole in `hosted_calls` when it closes, for the response loop to run.
        """
        events = []
        current = self.current
        if tool_kind == "hosted":
            if current is None or current.kind != "hosted" or current.key != key:
                events += self.close_item("completed")
                item = {"name": name, "call_id": call_id or new_call_id()}
                self.current = _OpenItem("hosted", -1, item, key, tool_kind)
            self.current.add(arguments)
            return events
        if current is None or current.kind != "tool" or current.key != key:
            item = tool_call_item(tool_kind, name, call_id or new_call_id(), "")
            if "status" in item:
                item["status"] = "in_progress"
            if tool_kind == "local_shell":
                item["action"]["command"] = []
            events += self._open("tool", item, key=key, tool_kind=tool_kind)
        if arguments:
            self.current.add(arguments)
            if self.current.item["type"] == "function_call":
                events.append(
                    self._item_field_event(
                        "response.function_call_arguments.delta", delta=arguments
                    )
                )
        return events

    def close_item(self, status: str) -> Events:
        """Close the open item (if any) with `status`, and add it to the output."""
        current = self.current
        if current is None:
            return []
        if current.kind == "hosted":
            self.hosted_calls.append({**current.item, "arguments": current.text})
            self.current = None
            return []
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

    def begin_item(self, item: dict[str, Any]) -> tuple[Events, int]:
        """Show an item the gateway makes itself (a hosted tool's call) as started; return
        its events and its output index. `item_event` and `end_item` follow."""
        events = self.close_item("completed")
        index = len(self.output)
        events.append(self.event("response.output_item.added", output_index=index, item=item))
        return events, index

    def item_event(self, event_type: str, item: dict[str, Any], index: int) -> Event:
        return self.event(event_type, item_id=item["id"], output_index=index)

    def end_item(self, item: dict[str, Any], index: int) -> Events:
        """The item begun at `index` is done: it joins the output."""
        self.output.append(item)
        return [self.event("response.output_item.done", output_index=index, item=item)]

    def _open(
        self, kind: str, item: dict[str, Any], key: Any = None, tool_kind: str = "function"
    ) -> Events:
        events = self.close_item("completed")
        self.current = _OpenItem(kind, len(self.output), item, key, tool_kind)
        events.append(self._item_event("response.output_item.added", item))
        return events

    def _item_event(self, event_type: str, item: dict[str, Any]) -> Event:
        return self.event(event_type, output_index=self.current.output_index, item=item)

    def _item_field_event(self, event_type: str, **fields: Any) -> Event:
        current = self.current
        return self.event(
            event_type, item_id=current.item["id"], output_index=current.output_index, **fields
        )

    def _part_event(self, event_type: str, **fields: Any) -> Event:
        return self._item_field_event(event_type, content_index=0, **fields)

    def _close_reasoning(self, current: _OpenItem) -> tuple[Events, dict[str, Any]]:
        text = current.text
        part = {"type": "reasoning_text", "text": text}
        events = [
            self._part_event("response.reasoning_text.done", text=text),
            self._part_event("response.content_part.done", part=part),
        ]
        return events, reasoning_item(text, item_id=current.item["id"])

    def _close_message(self, current: _OpenItem) -> tuple[Events, dict[str, Any]]:
        text = current.text
        annotations = self.annotate(text) if self.annotate else []
        events = [
            self._part_event(
                "response.output_text.annotation.added",
                annotation_index=number,
                annotation=annotation,
            )
            for number, annotation in enumerate(annotations)
        ]
        part = {**output_text_part(text), "annotations": annotations}
        events += [
            self._part_event("response.output_text.done", text=text, logprobs=[]),
            self._part_event("response.content_part.done", part=part),
        ]
        item = message_item(text, item_id=current.item["id"])
        item["content"] = [part]
        return events, item

    def _close_refusal(self, current: _OpenItem) -> tuple[Events, dict[str, Any]]:
        text = current.text
        events = [
            self._part_event("response.refusal.done", refusal=text),
            self._part_event("response.content_part.done", part=refusal_part(text)),
        ]
        return events, message_item(text, item_id=current.item["id"], refusal=True)

    def _close_tool(self, current: _OpenItem) -> tuple[Events, dict[str, Any]]:
        opened = current.item
        name = opened.get("name", "local_shell")
        item = tool_call_item(
            current.tool_kind, name, opened["call_id"], current.text, item_id=opened["id"]
        )
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
