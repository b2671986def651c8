"""/v1/gateway/admin-tokens: admin tokens with a role and a scope (the token shown once)."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from app.api.gateway import ADMIN_PAGE, MAX_ADMIN_PAGE, admin_context, bp, once
from app.api.http import json_body, page_args
from app.protocol.gateway import schemas
from app.protocol.gateway.objects import deleted_object
from app.protocol.responses.objects import list_object
from app.protocol.responses.schemas.errors import validate_body
from app.services.admin import admin_tokens as use


@bp.post("/admin-tokens")
def create_admin_token() -> Any:
    body = json_body()
    validate_body(schemas.CREATE_ADMIN_TOKEN, body)
    return once(body, lambda: (201, use.create_admin_token(admin_context(), body)))


@bp.get("/admin-tokens")
def list_admin_tokens() -> Any:
    page = page_args(default=ADMIN_PAGE, maximum=MAX_ADMIN_PAGE)
    return jsonify(list_object(*use.list_admin_tokens(admin_context(), page)))


@bp.get("/admin-tokens/<token_id>")
def get_admin_token(token_id: str) -> Any:
    return jsonify(use.get_admin_token(admin_context(), token_id))


@bp.delete("/admin-tokens/<token_id>")
def delete_admin_token(token_id: str) -> Any:
    use.delete_admin_token(admin_context(), token_id)
    return jsonify(deleted_object(token_id, "admin_token"))
