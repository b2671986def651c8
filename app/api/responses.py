"""/v1/responses: create, retrieve, delete, cancel, list input items."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify

from app.api.http import (
    MAX_SEQUENCE_NUMBER,
    flag_arg,
    int_arg,
    json_body,
    page_args,
    request_context,
    services,
    sse_response,
)
from app.observe import StreamWatch
from app.protocol.responses.schemas import validate_create_request
from app.services import responses as service

bp = Blueprint("responses", __name__, url_prefix="/v1/responses")


@bp.post("")
def create() -> Any:
    request_body = validate_create_request(json_body())
    g.record.model, g.record.stream = request_body["model"], bool(request_body.get("stream"))
    created = service.create_response(services(), request_context(), request_body)
    if created.events is not None:
        return sse_response(created.events, created.headers, StreamWatch(g.record))
    g.record.take_response(created.body)
    return jsonify(created.body), 200, created.headers


@bp.get("/<response_id>")
def retrieve(response_id: str) -> Any:
    after = int_arg("starting_after", default=-1, minimum=-1, maximum=MAX_SEQUENCE_NUMBER)
    if flag_arg("stream"):
        follow = service.follow_response(services(), request_context(), response_id, after)
        return sse_response(follow)
    return jsonify(service.get_response(request_context(), response_id))


@bp.delete("/<response_id>")
def delete(response_id: str) -> Any:
    return jsonify(service.delete_response(request_context(), response_id))


@bp.post("/<response_id>/cancel")
def cancel(response_id: str) -> Any:
    return jsonify(service.cancel_response(request_context(), response_id))


@bp.get("/<response_id>/input_items")
def input_items(response_id: str) -> Any:
    return jsonify(service.list_input_items(request_context(), response_id, page_args()))
