"""The admin plane's HTTP layer: /v1/gateway/… (tenants, keys, audit log).

Every route but the public ones asks for an admin (app/auth/admin.py)
before anything else; a use case gets it in an `AdminContext` with the
request's id. POSTs take an optional `Idempotency-Key`; single objects
carry an `ETag` (`W/"<version>"`) that a PATCH's `If-Match` may name.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from app.services.admin import AdminContext, etag
from app.services.admin.idempotency import run_once

bp = Blueprint("gateway", __name__, url_prefix="/v1/gateway")
ADMIN_PAGE, MAX_ADMIN_PAGE = 50, 500


@bp.before_request
def authenticate_admin() -> None:
    admin_auth = current_app.extensions["admin_auth"]
    authenticator = current_app.extensions["auth"]
    g.admin_context = AdminContext(
        admin=admin_auth.admin_for(request.headers, request.remote_addr),
        request_id=g.record.request_id,
        keys=authenticator if hasattr(authenticator, "forget") else None,
        key_pepper=admin_auth.key_pepper,
        replay_key=admin_auth.replay_key,
        admin_pepper=admin_auth.pepper,
    )


def admin_context() -> AdminContext:
    return g.admin_context


def with_etag(payload: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(payload)
    response.status_code = status
    response.headers["ETag"] = etag(payload["version"])
    return response


def once(body: Any, run: Any) -> Response:
    """Answer a POST (of `body`) once per `Idempotency-Key`: a retry gets the first answer."""
    key = request.headers.get("Idempotency-Key")
    (status, payload), replayed = run_once(admin_context(), key, body, run)
    response = with_etag(payload, status) if "version" in payload else jsonify(payload)
    response.status_code = status
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


from app.api.gateway import (  # noqa: E402,F401  (their routes join bp)
    admin_tokens,
    audit,
    budgets,
    keys,
    tenants,
    usage,
)
