"""/v1/prompts: versioned prompt templates."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from app.api.http import int_arg, json_body, page_args, request_context
from app.protocol.prompts import validate_prompt_request
from app.services import prompts as service

bp = Blueprint("prompts", __name__, url_prefix="/v1/prompts")


@bp.post("")
def create() -> Any:
    body = validate_prompt_request("create", json_body())
    return jsonify(service.create_prompt(request_context(), body))


@bp.get("")
def list_prompts() -> Any:
    return jsonify(service.list_prompts(request_context(), page_args()))


@bp.get("/<prompt_id>")
def retrieve(prompt_id: str) -> Any:
    version = int_arg("version", default=None, minimum=1)
    return jsonify(service.get_prompt(request_context(), prompt_id, version))


@bp.post("/<prompt_id>")
def update(prompt_id: str) -> Any:
    body = validate_prompt_request("update", json_body())
    return jsonify(service.update_prompt(request_context(), prompt_id, body))


@bp.delete("/<prompt_id>")
def delete(prompt_id: str) -> Any:
    return jsonify(service.delete_prompt(request_context(), prompt_id))


@bp.get("/<prompt_id>/versions")
def versions(prompt_id: str) -> Any:
    return jsonify(service.list_versions(request_context(), prompt_id))


@bp.post("/<prompt_id>/default_version")
def set_default(prompt_id: str) -> Any:
    body = validate_prompt_request("set_default", json_body())
    return jsonify(service.set_default(request_context(), prompt_id, body))
