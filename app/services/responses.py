"""Use case: create a response (JSON or stream), and read back stored ones.

The flow is always: check and prepare everything (nothing sent, nothing
stored on failure) -> send to the backend -> translate -> store (commit)
-> hand the final body or terminal event to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from app.auth.principal import Owner
from app.errors import GatewayError, NotFound
from app.protocol.responses.file_search import FILE_SEARCH
from app.protocol.responses.objects import complete_response, list_object
from app.services import background, limits
from app.services.context import RequestContext, ServiceContext
from app.services.prepare import Prepared, persist, prepare
from app.services.response_loop import ResponseLoop, annotate_answer
from app.services.streaming import Events, open_stream
from app.store import responses
from app.store.models import INPUT

log = logging.getLogger(__name__)

DROPPED_TOOLS_HEADER = "X-Gateway-Dropped-Tools"


@dataclass
class Created:
    """The result of creating a response: a body or an event stream (in batches), plus headers."""

    body: dict[str, Any] | None = None
    events: Iterator[Events] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def create_response(
    services: ServiceContext, context: RequestContext, request: dict[str, Any]
) -> Created:
    """Create a response for a validated request body, as `context`'s caller."""
    prepared = prepare(services, context, request)
    try:
        return _run(services, context, request, prepared)
    except BaseException as exc:  # before any output: the request still settles
        error = exc if isinstance(exc, GatewayError) else None
        limits.settle_alone(prepared.admission, prepared.response, error)
        raise


def _run(
    services: ServiceContext, context: RequestContext, request: dict[str, Any], prepared: Prepared
) -> Created:
    headers = dict(prepared.admission.headers) if prepared.admission else {}
    if prepared.outgoing.dropped_tools:
        headers[DROPPED_TOOLS_HEADER] = ",".join(prepared.outgoing.dropped_tools)
    if request.get("background"):
        queued = background.start(
            prepared, context.principal, services.keepalive_seconds, services.background_lease
        )
        if request.get("stream"):
            timeout = services.backends.read_timeout
            events = background.follow(context.owner, queued["id"], -1, timeout)
            return Created(events=events, headers=headers)
        return Created(body=queued, headers=headers)
    if request.get("stream"):
        events = open_stream(prepared, context.principal, services.keepalive_seconds)
        return Created(events=events, headers=headers)
    if prepared.hosted is not None:
        return Created(body=_complete_with_tools(prepared, context), headers=headers)
    output, usage, incomplete = prepared.backend.complete(prepared.outgoing, context.principal)
    output = [prepared.seal(item) for item in output]
    response = complete_response(prepared.response, output, usage, incomplete)
    persist(prepared)
    return Created(body=response, headers=headers)


def _complete_with_tools(prepared: Prepared, context: RequestContext) -> dict[str, Any]:
    """A whole answer that may take several backend calls: the model calls hosted tools,
    the gateway runs them, and calls it again. A call that fails after the first leaves
    the response stored as failed with what came before, and raises."""
    loop = ResponseLoop.for_request(prepared)
    emitter, hosted = loop.emitter, prepared.hosted
    assert hosted is not None
    outgoing = prepared.outgoing
    while True:
        try:
            items, usage, incomplete = prepared.backend.complete(outgoing, context.principal)
        except GatewayError as exc:
            if not loop.told:
                raise
            emitter.fail(exc.to_dict())
            persist(prepared)
            raise
        emitter.add_usage(usage)
        calls = [i for i in items if i["type"] == "function_call" and i["name"] == FILE_SEARCH]
        visible = [prepared.seal(item) for item in items if item not in calls]
        emitter.output += visible
        if not calls or incomplete:
            break
        loop.continue_after(calls, stream=False)
        if loop.next_outgoing is None:
            break
        outgoing = loop.next_outgoing
    annotate_answer(emitter.output[loop.turn_start :], hosted.annotate)
    response = complete_response(prepared.response, emitter.output, emitter.usage, incomplete)
    persist(prepared)
    return response


def get_response(context: RequestContext, response_id: str) -> dict[str, Any]:
    """Return a stored response of the caller's, or raise 404."""
    return background.stored_response(context.owner, response_id)


def follow_response(
    services: ServiceContext, context: RequestContext, response_id: str, starting_after: int
) -> Iterator[Events]:
    """Stream a background response's events again, from `starting_after` on."""
    background.check_followable(context.owner, response_id)
    return background.follow(
        context.owner, response_id, starting_after, services.backends.read_timeout
    )


def delete_response(context: RequestContext, response_id: str) -> dict[str, Any]:
    if not responses.delete_response(context.owner, response_id):
        raise background.response_not_found(response_id)
    return {"id": response_id, "object": "response", "deleted": True}


def cancel_response(context: RequestContext, response_id: str) -> dict[str, Any]:
    """Cancel a background response (others cannot be cancelled)."""
    return background.cancel(context.owner, response_id)


def list_input_items(
    context: RequestContext, response_id: str, page: dict[str, Any]
) -> dict[str, Any]:
    """Return one page of the input items of a stored response."""
    if not responses.response_exists(context.owner, response_id):
        raise background.response_not_found(response_id)
    return item_page(context.owner, response_id, INPUT, page)


def item_page(owner: Owner, parent_id: str, slot: str, page: dict[str, Any]) -> dict[str, Any]:
    """One page of a parent's items as an OpenAI list object."""
    try:
        items, has_more = responses.page_items(owner, parent_id, slot, **page)
    except LookupError as exc:
        raise NotFound(
            f"Item with id '{exc.args[0]}' not found.", param="after", code="item_not_found"
        ) from None
    return list_object(items, has_more)
