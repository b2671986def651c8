"""One streamed Chat Completions answer, fed to a response's emitter as its bytes arrive.

`ChatTurn` reads the backend's SSE lines (`feed(bytes)`), parses each
chunk and hands its deltas to the `ResponseEmitter`: reasoning
(`reasoning_content` or `reasoning`), text, refusals, and tool calls as
`function_call_arguments` deltas, never as text. It notes how the answer
ended and its usage; what the response does next (finish, another turn)
is the response loop's to say. What is not a readable Chat stream (bad
JSON, an over-long line, an error object) is a `BadGateway`.
"""

from __future__ import annotations

from typing import Any

from app import compact_json
from app.errors import BadGateway, backend_words
from app.protocol.chat.completion import incomplete_reason, usage_from_chat
from app.protocol.chat.sse import SSEError, SSEParser
from app.protocol.responses.events import Events, ResponseEmitter

TEXT_FIELDS = (("content", False), ("refusal", True))


class ChatTurn:
    """Chat chunks in, the emitter's events out."""

    def __init__(
        self, emitter: ResponseEmitter, tool_kinds: dict[str, str], reasoning_field: str
    ) -> None:
        self.emitter = emitter
        self.tool_kinds = tool_kinds
        self.reasoning_fields = (reasoning_field, "reasoning_content", "reasoning")
        self.parser = SSEParser()
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.call_kinds: dict[Any, str] = {}  # a call's kind, told by its first chunk's name

    @property
    def done(self) -> bool:
        """Whether the backend sent `data: [DONE]`: nothing more is read."""
        return self.parser.done

    @property
    def finished(self) -> bool:
        """Whether the backend said how the answer ended (a cut stream never does)."""
        return self.finish_reason is not None

    def feed(self, data: bytes, events: Events) -> Events:
        """Translate what one read off the backend brought, into `events` (returned).

        A read that breaks midway leaves the events of what came before the
        break in `events`: they are sent before the failure.
        """
        try:
            payloads = self.parser.feed(data)
        except SSEError as exc:
            raise BadGateway(f"The backend's stream is not readable: {exc}") from exc
        for payload in payloads:
            events += self.feed_line(payload)
        return events

    def feed_line(self, data: str) -> Events:
        """Translate one SSE `data:` payload."""
        try:
            chunk = compact_json.loads(data)
        except ValueError as exc:
            raise BadGateway(f"invalid JSON in backend stream: {data[:200]!r}") from exc
        if not isinstance(chunk, dict):
            raise BadGateway("backend stream chunk is not a JSON object")
        return self.feed_chunk(chunk)

    def feed_chunk(self, chunk: dict[str, Any]) -> Events:
        """Translate one Chat completion chunk (an `error` object instead ends the stream)."""
        if chunk.get("error") and not chunk.get("choices"):
            error = chunk["error"]
            said = error.get("message") if isinstance(error, dict) else error
            raise BadGateway(f"the backend stopped with an error: {backend_words(str(said))}")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        events: Events = []
        emitter = self.emitter
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            for field in self.reasoning_fields:
                if delta.get(field):
                    events += emitter.reasoning_delta(delta[field])
                    break
            for field, refusal in TEXT_FIELDS:
                if delta.get(field):
                    events += emitter.text_delta(delta[field], refusal=refusal)
            for call in delta.get("tool_calls") or ():
                events += self._tool_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def _tool_delta(self, call: dict[str, Any]) -> Events:
        function = call.get("function") or {}
        name = function.get("name") or ""
        key = call.get("index", 0)
        if name or key not in self.call_kinds:
            self.call_kinds[key] = self.tool_kinds.get(name, "function")
        return self.emitter.tool_call_delta(
            key=key,
            tool_kind=self.call_kinds[key],
            name=name,
            call_id=call.get("id"),
            arguments=function.get("arguments") or "",
        )

    def end(self) -> str | None:
        """Count the turn's usage into the response; return why it is incomplete, if it is."""
        self.emitter.add_usage(usage_from_chat(self.usage))
        return incomplete_reason(self.finish_reason)
