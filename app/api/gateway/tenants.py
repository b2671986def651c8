"""/v1/gateway/tenants: a super-admin makes, changes, deletes them; a tenant admin sees its own."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from app.api.gateway import ADMIN_PAGE, MAX_ADMIN_PAGE, admin_context, bp, once, with_etag
from app.api.http import json_body, page_args
from app.protocol.gateway import schemas
from app.protocol.gateway.objects import deleted_object
from app.protocol.responses.objects import list_object
from app.protocol.responses.schemas.errors import validate_body
from app.services.admin import expected_version
from app.services.admin import tenants as use


@bp.post("/tenants")
def create_tenant() -> Any:
    body = json_body()
    validate_body(schemas.CREATE_TENANT, body)
    return once(body, lambda: (201, use.create_tenant(admin_context(), body)))


@bp.get("/tenants")
def list_tenants() -> Any:
    page = page_args(default=ADMIN_PAGE, maximum=MAX_ADMIN_PAGE)
    return jsonify(list_object(*use.list_tenants(admin_context(), page)))


@bp.get("/tenants/<tenant_id>")
def get_tenant(tenant_id: str) -> Any:
    return with_etag(use.get_tenant(admin_context(), tenant_id))


@bp.patch("/tenants/<tenant_id>")
def update_tenant(tenant_id: str) -> Any:
    body = json_body()
    validate_body(schemas.UPDATE_TENANT, body)
    expected = expected_version(request.headers.get("If-Match"))
    return with_etag(use.update_tenant(admin_context(), tenant_id, body, expected))


@bp.delete("/tenants/<tenant_id>")
def delete_tenant(tenant_id: str) -> Any:
    use.delete_tenant(admin_context(), tenant_id)
    return jsonify(deleted_object(tenant_id, "tenant"))
