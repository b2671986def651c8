"""Invariants of a Responses API event stream, checked against the openai types.

`assert_valid_event_stream(events)` takes the decoded events of one stream
(dicts, in the order received) and checks what a client relies on:

- each event validates as `ResponseStreamEvent` *and* as the class its
  `type` names, with no field the SDK does not know;
- `sequence_number` counts 0, 1, 2, … without gaps;
- the stream is either one lone `error` event, or `response.created`
  … exactly one terminal event, last; `response.in_progress` may come
  again at any point (the gateway's keep-alive) and then shows the items
  done so far;
- one output item open at a time, `added` before its events and `done`
  after them, `output_index` counting from 0, ids/`call_id` stable;
- content (and summary) parts `added` before their deltas, the `*.done`
  text equal to the concatenated deltas, parts closed before their item;
- annotations announced inside their open text part, numbered from 0, at
  an index within its text, and the part's final `annotations` exactly
  those announced;
- a hosted tool's call (`file_search_call`) goes through its steps in
  order (`in_progress`, `searching`, `completed`) inside its open item;
- the terminal response holds exactly the items announced `done`, usage
  with every detail (completed/incomplete), a filled `error` (failed),
  and `annotations` on every `output_text` part.

It returns the terminal response as an `openai.types.responses.Response`
(or None for a lone `error` event), so callers can check its content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, get_args

from openai import BaseModel
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter, ValidationError

EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
EVENT_CLASSES: dict[str, type[BaseModel]] = {
    get_args(cls.model_fields["type"].annotation)[0]: cls
    for cls in get_args(get_args(ResponseStreamEvent)[0])
}
# Terminal event -> the statuses its response may have (a cancelled
# background response ends in `response.incomplete`: the API has no
# `response.cancelled` event).
TERMINAL_STATUS = {
    "response.completed": ("completed",),
    "response.incomplete": ("incomplete", "cancelled"),
    "response.failed": ("failed",),
}
# Fields the API sends that this SDK version does not model (class name -> fields).
KNOWN_EXTRA_FIELDS = {"Response": {"store"}}
# Delta/done event type -> (part list, part type) they belong to.
PART_TEXT_EVENTS = {
    "response.output_text": ("content", "output_text"),
    "response.refusal": ("content", "refusal"),
    "response.reasoning_text": ("content", "reasoning_text"),
    "response.reasoning_summary_text": ("summary", "summary_text"),
}
PART_EVENTS = {
    "response.content_part": "content",
    "response.reasoning_summary_part": "summary",
}
# Item-level argument streams: event prefix -> (item type, done field, item field).
ITEM_TEXT_EVENTS = {
    "response.function_call_arguments": ("function_call", "arguments", "arguments"),
    "response.custom_tool_call_input": ("custom_tool_call", "input", "input"),
}
# A hosted tool's call: event prefix -> (item type, its steps in order).
HOSTED_STEPS = {
    "response.file_search_call": ("file_search_call", ("in_progress", "searching", "completed")),
}
ANNOTATION_ADDED = "response.output_text.annotation.added"


def validate_event(event: dict[str, Any]) -> BaseModel:
    """Validate one event against the union and its own class; refuse unknown fields."""
    assert isinstance(event, dict), f"event is not an object: {event!r}"
    cls = EVENT_CLASSES.get(event.get("type"))
    assert cls is not None, f"unknown event type {event.get('type')!r}"
    try:
        model = cls.model_validate(event)
        assert isinstance(EVENT_ADAPTER.validate_python(event), cls)
    except ValidationError as exc:
        raise AssertionError(f"{event['type']} does not match the openai types: {exc}") from exc
    unknown = unknown_fields(model, event["type"])
    assert not unknown, f"fields the openai types do not know: {unknown}"
    return model


def unknown_fields(value: Any, path: str) -> list[str]:
    """Paths of fields that validated only as pydantic extras (typos, invented fields)."""
    found = []
    if isinstance(value, BaseModel):
        allowed = KNOWN_EXTRA_FIELDS.get(type(value).__name__, set())
        found += [f"{path}.{name}" for name in (value.model_extra or {}) if name not in allowed]
        for name in type(value).model_fields:
            found += unknown_fields(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, (list, tuple)):
        for index, element in enumerate(value):
            found += unknown_fields(element, f"{path}[{index}]")
    return found


@dataclass
class _Part:
    kind: str
    index: int
    part_type: str
    deltas: list[str] = field(default_factory=list)
    text_done: bool = False
    annotations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Item:
    output_index: int
    item: dict[str, Any]
    parts: dict[str, int] = field(default_factory=lambda: {"content": 0, "summary": 0})
    open_part: _Part | None = None
    deltas: list[str] = field(default_factory=list)
    text_done: str | None = None
    steps: list[str] = field(default_factory=list)
    annotations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


class _StreamChecker:
    """Walks the events once, keeping the open item and part."""

    def __init__(self) -> None:
        self.response_id: str | None = None
        self.done_items: list[dict[str, Any]] = []
        self.open: _Item | None = None

    def check(self, events: list[dict[str, Any]]) -> Response | None:
        assert events, "the stream is empty"
        for number, event in enumerate(events):
            validate_event(event)
            assert event["sequence_number"] == number, (
                f"sequence_number {event['sequence_number']} at position {number}"
            )
        if events[0]["type"] == "error":
            assert len(events) == 1, "an error event before response.created must be alone"
            assert events[0]["message"], "error event without a message"
            return None
        assert events[0]["type"] == "response.created", f"stream starts with {events[0]['type']}"
        self._snapshot(events[0], ("in_progress", "queued"))
        terminal = events[-1]
        assert terminal["type"] in TERMINAL_STATUS, f"stream ends with {terminal['type']}"
        for event in events[1:-1]:
            self._event(event)
        return self._terminal(terminal)

    def _event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        assert kind not in TERMINAL_STATUS, f"{kind} before the end of the stream"
        assert kind != "response.created", "response.created after the start of the stream"
        assert kind != "error", "error event after response.created (use response.failed)"
        if kind == "response.in_progress":
            self._snapshot(event, ("in_progress",))
        elif kind == "response.output_item.added":
            self._item_added(event)
        elif kind == "response.output_item.done":
            self._item_done(event)
        else:
            self._inside_item(event)

    def _snapshot(self, event: dict[str, Any], statuses: tuple[str, ...]) -> dict[str, Any]:
        response = event["response"]
        self.response_id = self.response_id or response["id"]
        assert response["id"] == self.response_id, "response id changed during the stream"
        assert response["status"] in statuses, f"{event['type']}: status {response['status']}"
        assert response["output"] == self.done_items, f"{event['type']} output != items done"
        return response

    def _item_added(self, event: dict[str, Any]) -> None:
        assert self.open is None, f"item {event['output_index']} added while another is open"
        assert event["output_index"] == len(self.done_items), "output_index skips or repeats"
        item = event["item"]
        assert item.get("id"), "output item without an id"
        assert item.get("status", "in_progress") == "in_progress", "added item not in_progress"
        self.open = _Item(event["output_index"], item)

    def _item_done(self, event: dict[str, Any]) -> None:
        current = self._current(event, with_item_id=False)
        item, opened = event["item"], current.item
        assert current.open_part is None, "item done while one of its parts is open"
        for key in ("id", "type", "call_id", "name"):
            assert item.get(key) == opened.get(key), f"{key} changed between added and done"
        assert item.get("status") != "in_progress", "done item still in_progress"
        for prefix, (item_type, _, item_field) in ITEM_TEXT_EVENTS.items():
            if item["type"] == item_type and (current.deltas or current.text_done is not None):
                assert current.text_done is not None, f"{prefix}.done missing"
                assert item[item_field] == current.text_done, f"item {item_field} != {prefix}.done"
        _check_output_text_parts(item, current.annotations)
        if item["type"] in {item_type for item_type, _ in HOSTED_STEPS.values()}:
            steps = dict(HOSTED_STEPS.values())[item["type"]]
            expected = steps if item["status"] == "completed" else steps[:2]
            assert tuple(current.steps) == expected, f"{item['type']} steps {current.steps}"
        self.done_items.append(item)
        self.open = None

    def _current(self, event: dict[str, Any], with_item_id: bool = True) -> _Item:
        current = self.open
        assert current is not None, f"{event['type']} outside of an open item"
        assert event["output_index"] == current.output_index, f"{event['type']}: output_index"
        if with_item_id:
            assert event["item_id"] == current.item["id"], f"{event['type']}: item_id"
        return current

    def _inside_item(self, event: dict[str, Any]) -> None:
        prefix, _, suffix = event["type"].rpartition(".")
        current = self._current(event)
        if event["type"] == ANNOTATION_ADDED:
            self._annotation(current, event)
        elif prefix in HOSTED_STEPS:
            item_type, steps = HOSTED_STEPS[prefix]
            assert current.item["type"] == item_type, f"{event['type']} on a {current.item['type']}"
            current.steps.append(suffix)
            assert tuple(current.steps) == steps[: len(current.steps)], f"steps {current.steps}"
        elif prefix in PART_EVENTS:
            self._part_boundary(current, PART_EVENTS[prefix], suffix, event)
        elif prefix in PART_TEXT_EVENTS:
            self._part_text(current, prefix, suffix, event)
        elif prefix in ITEM_TEXT_EVENTS:
            self._item_text(current, prefix, suffix, event)
        else:
            raise AssertionError(f"event {event['type']} is not checked by tests/events.py")

    def _part_boundary(self, current: _Item, kind: str, suffix: str, event: dict[str, Any]):
        index_key = "content_index" if kind == "content" else "summary_index"
        index, part = event[index_key], event["part"]
        if suffix == "added":
            assert current.open_part is None, "part added while another part is open"
            assert index == current.parts[kind], f"{index_key} skips or repeats"
            assert part.get("text", part.get("refusal", "")) == "", "part added with text"
            current.parts[kind] += 1
            current.open_part = _Part(kind, index, part["type"])
        else:
            opened = current.open_part
            assert opened and (opened.kind, opened.index) == (kind, index), "done of unopened part"
            assert part["type"] == opened.part_type, "part type changed between added and done"
            assert opened.text_done, f"{event['type']} before the part's text .done event"
            text = part.get("text", part.get("refusal"))
            assert text == "".join(opened.deltas), "part text != concatenated deltas"
            if part["type"] == "output_text":
                assert part["annotations"] == opened.annotations, "annotations != announced"
            current.open_part = None
        if part["type"] == "output_text":
            assert isinstance(part.get("annotations"), list), "output_text part without annotations"

    def _annotation(self, current: _Item, event: dict[str, Any]) -> None:
        opened = current.open_part
        assert opened and opened.part_type == "output_text", "annotation outside a text part"
        assert event["content_index"] == opened.index, "annotation: content_index"
        assert not opened.text_done, "annotation after the part's text was done"
        assert event["annotation_index"] == len(opened.annotations), "annotation_index skips"
        annotation = event["annotation"]
        if "index" in annotation:
            assert 0 <= annotation["index"] <= len("".join(opened.deltas)), "annotation index"
        opened.annotations.append(annotation)
        current.annotations[opened.index] = opened.annotations

    def _part_text(self, current: _Item, prefix: str, suffix: str, event: dict[str, Any]):
        kind, part_type = PART_TEXT_EVENTS[prefix]
        index = event["content_index" if kind == "content" else "summary_index"]
        opened = current.open_part
        assert opened and (opened.kind, opened.index) == (kind, index), f"{event['type']} no part"
        assert opened.part_type == part_type, f"{event['type']} inside a {opened.part_type} part"
        assert not opened.text_done, f"{event['type']} after the part's text was done"
        if suffix == "delta":
            opened.deltas.append(event["delta"])
        else:
            done_text = event.get("text", event.get("refusal"))
            assert done_text == "".join(opened.deltas), f"{event['type']} != concatenated deltas"
            opened.text_done = True

    def _item_text(self, current: _Item, prefix: str, suffix: str, event: dict[str, Any]):
        item_type, done_field, _ = ITEM_TEXT_EVENTS[prefix]
        assert current.item["type"] == item_type, f"{event['type']} on a {current.item['type']}"
        assert current.text_done is None, f"{event['type']} after {prefix}.done"
        if suffix == "delta":
            current.deltas.append(event["delta"])
        else:
            assert event[done_field] == "".join(current.deltas), f"{prefix}.done != deltas"
            current.text_done = event[done_field]

    def _terminal(self, event: dict[str, Any]) -> Response:
        assert self.open is None, "stream ended with an item still open"
        response = self._snapshot(event, TERMINAL_STATUS[event["type"]])
        status, error = response["status"], response.get("error")
        if status == "failed":
            assert error and error.get("code") and error.get("message"), "failed without error"
        else:
            assert error is None, f"{status} response carries an error"
            _check_usage(response.get("usage"))
        reason = (response.get("incomplete_details") or {}).get("reason")
        if status == "incomplete":
            assert reason, "incomplete response without incomplete_details.reason"
        elif status != "cancelled":
            assert reason is None, f"{status} response with incomplete_details"
        return Response.model_validate(response)


def _check_output_text_parts(
    item: dict[str, Any], announced: dict[int, list[dict[str, Any]]]
) -> None:
    parts = item.get("content") or [] if item["type"] == "message" else []
    for index, part in enumerate(parts):
        if part["type"] == "output_text":
            expected = announced.get(index, [])
            assert part.get("annotations") == expected, "output_text annotations != announced"


def _check_usage(usage: dict[str, Any] | None) -> None:
    assert usage, "terminal response without usage"
    assert isinstance(usage["input_tokens_details"]["cached_tokens"], int)
    assert isinstance(usage["output_tokens_details"]["reasoning_tokens"], int)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def assert_valid_event_stream(events: list[dict[str, Any]]) -> Response | None:
    """Check every invariant of one stream; return its final response (None: lone error)."""
    return _StreamChecker().check(events)
