"""/v1/gateway/scim/v2: SCIM 2.0 Users for an identity provider, with SCIM's own error shape.

An admin of every tenant (an admin token) provisions; errors are SCIM
`Error` messages (`status`, `scimType`, `detail`), not OpenAI's, as SCIM
clients expect; bodies are `application/scim+json`.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from app.errors import GatewayError
from app.services.admin import AdminContext
from app.services.admin import scim as use

bp = Blueprint("scim", __name__, url_prefix="/v1/gateway/scim/v2")
SCIM_JSON = "application/scim+json"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_TYPES = (
    "invalidFilter",
    "invalidValue",
    "invalidSyntax",
    "invalidPath",
    "noTarget",
    "mutability",
    "uniqueness",
)


@bp.before_request
def authenticate_admin() -> None:
    admin_auth = current_app.extensions["admin_auth"]
    g.scim_context = AdminContext(
        admin=admin_auth.admin_for(request.headers, request.remote_addr),
        request_id=g.record.request_id,
    )


@bp.errorhandler(GatewayError)
def scim_error(error: GatewayError) -> Response:
    body: dict[str, Any] = {
        "schemas": [ERROR],
        "status": str(error.status),
        "detail": error.message,
    }
    if error.code in SCIM_TYPES:
        body["scimType"] = error.code
    return _answer(body, error.status)


def _answer(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type=SCIM_JSON)


def _base() -> str:
    return request.host_url.rstrip("/") + bp.url_prefix


def _body() -> Any:
    try:
        return json.loads(request.get_data(as_text=True) or "null")
    except ValueError:
        raise use.ScimError("The body is not JSON.", "invalidSyntax") from None


@bp.post("/Users")
def create_user() -> Response:
    user = use.create_user(g.scim_context, _body())
    return _answer(use.resource(user, _base()), 201)


@bp.get("/Users")
def list_users() -> Response:
    users, total, start = use.list_users(g.scim_context, request.args)
    body = {
        "schemas": [use.LIST],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(users),
        "Resources": [use.resource(user, _base()) for user in users],
    }
    return _answer(body)


@bp.get("/Users/<user_id>")
def get_user(user_id: str) -> Response:
    return _answer(use.resource(use.get_user(g.scim_context, user_id), _base()))


@bp.put("/Users/<user_id>")
def replace_user(user_id: str) -> Response:
    return _answer(use.resource(use.replace_user(g.scim_context, user_id, _body()), _base()))


@bp.patch("/Users/<user_id>")
def patch_user(user_id: str) -> Response:
    return _answer(use.resource(use.patch_user(g.scim_context, user_id, _body()), _base()))


@bp.delete("/Users/<user_id>")
def delete_user(user_id: str) -> Response:
    use.delete_user(g.scim_context, user_id)
    return Response(status=204)
