"""Turning a validated request into everything needed to run it, and storing the result.

`prepare` does every check and lookup before anything is sent upstream, so
a refused request leaves no trace; `persist` commits the finished response
(and its conversation items) in one short transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.auth.principal import Owner
from app.backends import Backend
from app.backends.dialects.base import Outgoing
from app.errors import InvalidRequest, PermissionDenied, StoreError
from app.protocol.ids import new_id
from app.protocol.responses.objects import new_response
from app.protocol.sealed import seal
from app.services import inputs, limits, prompts
from app.services.context import RequestContext, ServiceContext
from app.services.hosted import HostedTools
from app.store import conversations, db, responses
from app.store.writes import write_transaction

log = logging.getLogger(__name__)

ENCRYPTED_REASONING = "reasoning.encrypted_content"


@dataclass
class Prepared:
    """A request ready to send: its backend and body, the response to fill, and whose it is."""

    owner: Owner
    request: dict[str, Any]
    backend: Backend
    outgoing: Outgoing
    input_items: list[dict[str, Any]]
    response: dict[str, Any]
    seal: Callable[[dict[str, Any]], dict[str, Any]]
    admission: limits.Admission | None = None  # a virtual key's: its limits and ledger row
    # Tools the gateway runs itself, and what the backend was sent (for the turns after).
    hosted: HostedTools | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)

    def next_turn(self, told: list[dict[str, Any]], stream: bool) -> Outgoing:
        """The next backend call of a response whose model called hosted tools: the same
        request, continued by `told` (its turns so far, their calls and results)."""
        hosted = self.hosted
        assert hosted is not None
        body = hosted.backend_request(self.request)
        return hosted.mark(self.backend.translate(body, self.sent + told, stream=stream))


def prepare(services: ServiceContext, context: RequestContext, request: dict[str, Any]) -> Prepared:
    """Resolve everything a (validated) request needs; raise before anything is sent."""
    if not context.principal.may_use(request["model"]):
        raise PermissionDenied(
            f"This key may not use the model '{request['model']}'.",
            param="model",
            code="model_not_allowed",
        )
    backend = services.backends.for_model(request["model"])
    input_items = inputs.normalize_input(request.get("input"))
    owner = context.owner
    history = inputs.history_for(owner, request)
    resolved = inputs.resolve_references(owner, input_items)
    if any(item.get("encrypted_content") for item in resolved):
        resolved = inputs.open_sealed_reasoning(resolved, services.reasoning_secret)
    sent = []
    if request.get("prompt") is not None:  # rendered first; the response names its version
        request["prompt"], given_first = prompts.rendered(context, request["prompt"])
        sent += inputs.attach_files(owner, services.blobs, given_first)
    sent += inputs.attach_files(owner, services.blobs, history, history=True)
    sent += inputs.attach_files(owner, services.blobs, resolved)
    streamed = bool(request.get("stream") or request.get("background"))
    hosted = HostedTools.of(services, context, request)
    if hosted is None:
        outgoing = backend.translate(request, sent, stream=streamed)
    else:
        outgoing = hosted.mark(
            backend.translate(hosted.backend_request(request), sent, stream=streamed)
        )
    _check_dropped_tools(services, request, outgoing.dropped_tools)
    response = new_response(request, new_id("resp"), int(time.time()))
    seal = _sealer(services, request)
    admission = limits.admit(  # the last check
        context.principal, request, outgoing.body, services.budget_webhook, services.counters
    )
    return Prepared(
        owner, request, backend, outgoing, resolved, response, seal, admission, hosted, sent
    )


def _check_dropped_tools(
    services: ServiceContext, request: dict[str, Any], dropped: list[str]
) -> None:
    """Tools the backend cannot run are left out (and named), or refused if so configured."""
    if not dropped:
        return
    if services.reject_unsupported_tools:
        raise InvalidRequest(
            f"Tool type '{dropped[0]}' is not supported by this gateway.",
            param="tools",
            code="unsupported_tool",
        )
    log.warning("model %s: hosted tools left out: %s", request["model"], dropped)


def _sealer(
    services: ServiceContext, request: dict[str, Any]
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """With `include: [reasoning.encrypted_content]`, reasoning items carry a sealed copy."""
    if ENCRYPTED_REASONING not in (request.get("include") or ()):
        return lambda item: item

    def with_sealed_copy(item: dict[str, Any]) -> dict[str, Any]:
        if item["type"] != "reasoning":
            return item
        text = "".join(part["text"] for part in item.get("content") or ())
        return {**item, "encrypted_content": seal(text, services.reasoning_secret)}

    return with_sealed_copy


def persist(prepared: Prepared) -> None:
    """Commit the finished response (its conversation items, its ledger row) before it is
    announced, in one transaction."""
    owner, response = prepared.owner, prepared.response
    conversation = prepared.request.get("conversation")
    admission = prepared.admission

    def write() -> None:
        if prepared.request.get("background"):
            responses.finish_response(owner, response, prepared.input_items, conversation)
        elif response["store"]:
            responses.save_response(owner, response, prepared.input_items, conversation)
        elif conversation:
            conversations.add_items(owner, conversation, prepared.input_items + response["output"])
        limits.settle(admission, response)

    stores = prepared.request.get("background") or response["store"] or conversation
    if not stores and (admission is None or admission.settled):
        return
    try:
        with db.connection_context():
            write_transaction(write, shared=True)
    except StoreError as exc:
        log.error("could not store response %s: %s", response["id"], exc.message)
        raise
    except Exception as exc:
        log.exception("could not store response %s", response["id"])
        raise StoreError(f"The response could not be stored: {exc.__class__.__name__}") from exc
    limits.settled(admission)
