"""Backends that speak Chat Completions (vLLM, Ollama, llama.cpp, OpenAI, …).

The translation itself is pure and lives in app/protocol/chat/; this
module sends it: a request becomes a Chat body (`translate`), a whole
answer its output items (`complete`), a streamed one is read as server-sent
events by a `ChatTurn` (`turn`). A streamed reply must be an
uncompressed `text/event-stream`; anything else is a 502.
"""

from __future__ import annotations

import logging
from typing import Any

from app import compact_json
from app.auth.principal import Principal
from app.backends.dialects.base import Answer, Backend, model_entry
from app.backends.inflight import CallHandle
from app.backends.transport import BodyStream, discard
from app.errors import BadGateway, InvalidRequest
from app.protocol.chat.completion import answer_of
from app.protocol.chat.request import ChatOptions, ChatRequest, to_chat_request
from app.protocol.chat.stream import ChatTurn
from app.protocol.responses.events import ResponseEmitter

log = logging.getLogger(__name__)


class ChatBackend(Backend):
    """A model server's `/chat/completions`."""

    def endpoint(self) -> str:
        return self.settings.chat_url

    def translate(
        self, request: dict[str, Any], items: list[dict[str, Any]], *, stream: bool
    ) -> ChatRequest:
        settings = self.settings
        options = ChatOptions(
            settings.reasoning_field, settings.max_tokens_field, settings.thinking_off
        )
        chat = to_chat_request(request, items, options, stream=stream)
        if not chat.body["messages"]:
            raise InvalidRequest(
                "Missing required parameter: 'input'.",
                param="input",
                code="missing_required_parameter",
            )
        return chat

    def complete(self, outgoing: ChatRequest, principal: Principal) -> Answer:
        response = self.post(outgoing.body, principal, stream=False)
        try:
            completion = compact_json.loads(response.data.decode())
        except ValueError as exc:
            self.failed("invalid_json")
            raise BadGateway(f"Backend '{self.name}' sent invalid JSON") from exc
        if not isinstance(completion, dict):
            raise BadGateway(f"Backend '{self.name}' sent a completion that is not an object")
        return answer_of(completion, outgoing.tool_kinds, self.settings.reasoning_field)

    def open_stream(
        self, outgoing: ChatRequest, principal: Principal, handle: CallHandle | None = None
    ) -> BodyStream:
        response = self.post(outgoing.body, principal, stream=True, handle=handle)
        problem = _not_a_plain_event_stream(response.headers)
        if problem:
            discard(response)
            self.failed("not_event_stream")
            raise BadGateway(f"Backend '{self.name}' {problem}")
        return BodyStream(self.name, response, self.failed, self.settings.read_timeout)

    def turn(self, outgoing: ChatRequest, emitter: ResponseEmitter) -> ChatTurn:
        return ChatTurn(emitter, outgoing.tool_kinds, self.settings.reasoning_field)

    def list_models(self, principal: Principal) -> list[dict[str, Any]]:
        try:
            data = self.transport.get_json(
                self.settings.base_url + "/models", self.headers(principal, stream=False)
            ).get("data")
            if isinstance(data, list):
                return [model for model in data if isinstance(model, dict) and "id" in model]
        except (OSError, ValueError, AttributeError) as exc:  # requests' errors are OSErrors
            log.warning("backend %s: cannot list models: %s", self.name, exc)
        return [model_entry(model, self.name) for model in self.settings.models]


def _not_a_plain_event_stream(headers: Any) -> str | None:
    if not headers.get("Content-Type", "").startswith("text/event-stream"):
        return "did not answer with an event stream"
    encoding = headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return f"sent its event stream with Content-Encoding '{encoding}' (identity was asked)"
    return None
