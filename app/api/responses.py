"""/v1/responses: create, retrieve, delete, cancel, list input items."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify

from app.api.http import (
    MAX_SEQUENCE_NUMBER,
    client_key,
    flag_arg,
    gateway,
    int_arg,
    json_body,
    page_args,
    sse_response,
)
from app.observe import StreamWatch
from app.protocol.schemas import validate_create_request
from app.services import responses as service

bp = Blueprint("responses", __name__, url_prefix="/v1/responses")


@bp.post("")
def create() -> Any:
    request_body = validate_create_request(json_body())
    g.record.model, g.record.stream = request_body["model"], bool(request_body.get("stream"))
    created = service.create_response(gateway(), request_body, client_key())
    if created.events is not None:
        return sse_response(created.events, created.headers, StreamWatch(g.record))
    g.record.take_response(created.body)
    return jsonify(created.body), 200, created.headers


@bp.get("/<response_id>")
def retrieve(response_id: str) -> Any:
    after = int_arg("starting_after", default=-1, minimum=-1, maximum=MAX_SEQUENCE_NUMBER)
    if flag_arg("stream"):
        return sse_response(service.follow_response(gateway(), response_id, after))
    return jsonify(service.get_response(response_id))


@bp.delete("/<response_id>")
def delete(response_id: str) -> Any:
    return jsonify(service.delete_response(response_id))


@bp.post("/<response_id>/cancel")
def cancel(response_id: str) -> Any:
    return jsonify(service.cancel_response(response_id))


@bp.get("/<response_id>/input_items")
def input_items(response_id: str) -> Any:
    return jsonify(service.list_input_items(response_id, page_args()))
