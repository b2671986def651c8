"""/v1/gateway/keys: virtual keys (the secret shown once), rotation with a grace period."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from app.api.gateway import ADMIN_PAGE, MAX_ADMIN_PAGE, admin_context, bp, once, with_etag
from app.api.http import json_body, page_args
from app.errors import InvalidRequest
from app.protocol.gateway import schemas
from app.protocol.gateway.objects import deleted_object
from app.protocol.responses.objects import list_object
from app.protocol.responses.schemas.errors import validate_body
from app.services.admin import expected_version
from app.services.admin import keys as use

KEY_FILTERS = ("tenant_id", "project_id", "status", "name_prefix")
FILTER_STATUSES = ("active", "disabled", "expired")


@bp.post("/keys")
def create_key() -> Any:
    body = json_body()
    validate_body(schemas.CREATE_KEY, body)
    return once(body, lambda: (201, use.create_key(admin_context(), body)))


@bp.get("/keys")
def list_keys() -> Any:
    filters = {name: request.args.get(name) for name in KEY_FILTERS}
    if filters["status"] is not None and filters["status"] not in FILTER_STATUSES:
        raise InvalidRequest(
            f"Invalid 'status': expected one of {', '.join(FILTER_STATUSES)}.", param="status"
        )
    page = page_args(default=ADMIN_PAGE, maximum=MAX_ADMIN_PAGE)
    return jsonify(list_object(*use.list_keys(admin_context(), filters, page)))


@bp.get("/keys/<key_id>")
def get_key(key_id: str) -> Any:
    return with_etag(use.get_key(admin_context(), key_id))


@bp.patch("/keys/<key_id>")
def update_key(key_id: str) -> Any:
    body = json_body()
    validate_body(schemas.UPDATE_KEY, body)
    expected = expected_version(request.headers.get("If-Match"))
    return with_etag(use.update_key(admin_context(), key_id, body, expected))


@bp.delete("/keys/<key_id>")
def delete_key(key_id: str) -> Any:
    use.delete_key(admin_context(), key_id)
    return jsonify(deleted_object(key_id, "key"))


@bp.post("/keys/<key_id>/rotate")
def rotate_key(key_id: str) -> Any:
    body = json_body(empty={})
    validate_body(schemas.ROTATE_KEY, body)
    grace = body.get("grace_seconds", 0)
    return once(body, lambda: (200, use.rotate_key(admin_context(), key_id, grace)))


@bp.post("/keys/<key_id>/revoke-previous")
def revoke_previous(key_id: str) -> Any:
    return with_etag(use.revoke_previous(admin_context(), key_id))
