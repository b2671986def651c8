"""/v1/conversations: conversations and their items."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from app.api.http import json_body, page_args, request_context
from app.protocol.responses.schemas import validate_conversation_request
from app.services import conversations as service

bp = Blueprint("conversations", __name__, url_prefix="/v1/conversations")


@bp.post("")
def create() -> Any:
    body = validate_conversation_request("create", json_body(empty={}))
    return jsonify(service.create_conversation(request_context(), body))


@bp.get("/<conversation_id>")
def retrieve(conversation_id: str) -> Any:
    return jsonify(service.get_conversation(request_context(), conversation_id))


@bp.post("/<conversation_id>")
def update(conversation_id: str) -> Any:
    body = validate_conversation_request("update", json_body())
    return jsonify(service.update_conversation(request_context(), conversation_id, body))


@bp.delete("/<conversation_id>")
def delete(conversation_id: str) -> Any:
    return jsonify(service.delete_conversation(request_context(), conversation_id))


@bp.get("/<conversation_id>/items")
def list_items(conversation_id: str) -> Any:
    return jsonify(service.list_items(request_context(), conversation_id, page_args()))


@bp.post("/<conversation_id>/items")
def add_items(conversation_id: str) -> Any:
    body = validate_conversation_request("add_items", json_body())
    return jsonify(service.add_items(request_context(), conversation_id, body))


@bp.get("/<conversation_id>/items/<item_id>")
def get_item(conversation_id: str, item_id: str) -> Any:
    return jsonify(service.get_item(request_context(), conversation_id, item_id))


@bp.delete("/<conversation_id>/items/<item_id>")
def delete_item(conversation_id: str, item_id: str) -> Any:
    return jsonify(service.delete_item(request_context(), conversation_id, item_id))
