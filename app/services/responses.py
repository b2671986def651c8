"""Use case: create a response (JSON or stream), and read back stored ones.

The flow is always: check and prepare everything (nothing sent, nothing
stored on failure) -> send to the backend -> translate -> store (commit)
-> hand the final body or terminal event to the client.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from app.backends import Backend, Backends, ChatStream
from app.errors import BadGateway, GatewayError, InvalidRequest, NotFound, StoreError
from app.protocol.ids import new_id
from app.protocol.response import from_chat_completion, new_response
from app.protocol.sealed_reasoning import seal_reasoning
from app.protocol.stream import StreamError, StreamTranslator
from app.protocol.to_chat import ChatOptions, ChatRequest, to_chat_request
from app.services import inputs
from app.store import conversations, db, responses

log = logging.getLogger(__name__)

ENCRYPTED_REASONING = "reasoning.encrypted_content"
DROPPED_TOOLS_HEADER = "X-Gateway-Dropped-Tools"
REASONING_SECRET = "reasoning"


@dataclass
class Gateway:
    """What a use case needs from the running app."""

    backends: Backends
    reject_unsupported_tools: bool = False
    configured_secret: str | None = None
    _secret: bytes | None = field(default=None, repr=False)

    def reasoning_secret(self) -> bytes:
        """The key that seals reasoning, the same in every worker."""
        if self._secret is None:
            if self.configured_secret:
                self._secret = self.configured_secret.encode()
            else:
                self._secret = responses.shared_secret(REASONING_SECRET)
        return self._secret


@dataclass
class Created:
    """The result of creating a response: a body or an event stream, plus headers."""

    body: dict[str, Any] | None = None
    events: Iterator[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Prepared:
    request: dict[str, Any]
    backend: Backend
    chat: ChatRequest
    input_items: list[dict[str, Any]]
    response: dict[str, Any]
    seal: Callable[[dict[str, Any]], dict[str, Any]]


def create_response(gateway: Gateway, request: dict[str, Any], client_key: str | None) -> Created:
    """Create a response for a validated request body."""
    prepared = _prepare(gateway, request)
    headers = {}
    if prepared.chat.dropped_tools:
        headers[DROPPED_TOOLS_HEADER] = ",".join(prepared.chat.dropped_tools)
    if request.get("stream"):
        upstream = prepared.backend.stream(prepared.chat.body, client_key)
        return Created(events=_stream_events(prepared, upstream), headers=headers)
    completion = prepared.backend.complete(prepared.chat.body, client_key)
    response = from_chat_completion(
        prepared.response,
        completion,
        prepared.chat.tool_kinds,
        prepared.backend.settings.reasoning_field,
    )
    response["output"] = [prepared.seal(item) for item in response["output"]]
    _persist(prepared)
    return Created(body=response, headers=headers)


def _prepare(gateway: Gateway, request: dict[str, Any]) -> _Prepared:
    if request.get("background"):
        raise InvalidRequest(
            "Background mode is not supported by this gateway yet.",
            param="background",
            code="unsupported_parameter",
        )
    backend = gateway.backends.for_model(request["model"])
    input_items = inputs.normalize_input(request.get("input"))
    history = inputs.history_for(request)
    resolved = inputs.resolve_references(input_items)
    needs_secret = any(item.get("encrypted_content") for item in history + resolved)
    if needs_secret:
        resolved = inputs.open_sealed_reasoning(resolved, gateway.reasoning_secret())
    options = ChatOptions(backend.settings.reasoning_field, backend.settings.max_tokens_field)
    chat = to_chat_request(request, history + resolved, options, stream=bool(request.get("stream")))
    _check_chat(gateway, request, chat)
    response = new_response(request, new_id("resp"), int(time.time()))
    seal = _sealer(gateway, request)
    return _Prepared(request, backend, chat, resolved, response, seal)


def _check_chat(gateway: Gateway, request: dict[str, Any], chat: ChatRequest) -> None:
    if not chat.body["messages"]:
        raise InvalidRequest(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    if chat.dropped_tools:
        if gateway.reject_unsupported_tools:
            raise InvalidRequest(
                f"Tool type '{chat.dropped_tools[0]}' is not supported by this gateway.",
                param="tools",
                code="unsupported_tool",
            )
        log.warning("model %s: hosted tools left out: %s", request["model"], chat.dropped_tools)


def _sealer(
    gateway: Gateway, request: dict[str, Any]
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """With `include: [reasoning.encrypted_content]`, reasoning items carry a sealed copy."""
    if ENCRYPTED_REASONING not in (request.get("include") or ()):
        return lambda item: item

    def seal(item: dict[str, Any]) -> dict[str, Any]:
        if item["type"] != "reasoning":
            return item
        text = "".join(part["text"] for part in item.get("content") or ())
        return {**item, "encrypted_content": seal_reasoning(text, gateway.reasoning_secret())}

    return seal


def _persist(prepared: _Prepared) -> None:
    """Commit the finished response (and its conversation items) before it is announced."""
    response = prepared.response
    conversation = prepared.request.get("conversation")
    try:
        with db.connection_context():
            if response["store"]:
                responses.save_response(response, prepared.input_items, conversation)
            elif conversation:
                conversations.add_items(conversation, prepared.input_items + response["output"])
    except Exception as exc:
        log.exception("could not store response %s", response["id"])
        raise StoreError(f"The response could not be stored: {exc.__class__.__name__}") from exc


def _stream_events(prepared: _Prepared, upstream: ChatStream) -> Iterator[dict[str, Any]]:
    """Translate the backend stream; store the response before its terminal event."""
    translator = StreamTranslator(
        prepared.response,
        prepared.chat.tool_kinds,
        prepared.backend.settings.reasoning_field,
        finalize_item=prepared.seal,
    )
    try:
        yield from translator.start()
        for data in upstream:
            yield from translator.feed_line(data)
        if not translator.finished:
            raise BadGateway("The backend stream ended before the answer was complete.")
        yield from translator.finish()
        _persist(prepared)
    except (GatewayError, StreamError) as exc:
        error = exc if isinstance(exc, GatewayError) else BadGateway(str(exc))
        yield from translator.fail(error.to_dict())
        _persist_quietly(prepared)
    except GeneratorExit:
        translator.cancel()
        _persist_quietly(prepared)
        raise
    finally:
        upstream.close()
    yield translator.terminal_event()


def _persist_quietly(prepared: _Prepared) -> None:
    """Store a failed or cancelled response; a store error here is only logged."""
    with contextlib.suppress(StoreError):
        _persist(prepared)


def get_response(response_id: str) -> dict[str, Any]:
    """Return a stored response or raise 404."""
    response = responses.get_response(response_id)
    if response is None:
        raise _not_found(response_id)
    return response


def delete_response(response_id: str) -> dict[str, Any]:
    if not responses.delete_response(response_id):
        raise _not_found(response_id)
    return {"id": response_id, "object": "response", "deleted": True}


def cancel_response(response_id: str) -> dict[str, Any]:
    """Only background responses can be cancelled; stored ones are already final."""
    get_response(response_id)
    raise InvalidRequest(
        "Only responses created with background=true can be cancelled.",
        param="response_id",
        code="invalid_request",
    )


def list_input_items(response_id: str, page: dict[str, Any]) -> dict[str, Any]:
    """Return one page of the input items of a stored response."""
    if not responses.response_exists(response_id):
        raise _not_found(response_id)
    return item_page(response_id, "input", page)


def item_page(owner_id: str, role: str, page: dict[str, Any]) -> dict[str, Any]:
    """One page of an owner's items as an OpenAI list object."""
    try:
        items, has_more = responses.page_items(owner_id, role, **page)
    except LookupError as exc:
        raise NotFound(
            f"Item with id '{exc.args[0]}' not found.", param="after", code="item_not_found"
        ) from None
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", param="response_id")
