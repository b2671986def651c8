"""/v1/gateway/audit: who changed what, newest first (a tenant admin sees its tenant's)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from app.api.gateway import ADMIN_PAGE, MAX_ADMIN_PAGE, admin_context, bp
from app.api.http import int_arg, page_args
from app.protocol.responses.objects import list_object
from app.services import admin


@bp.get("/audit")
def list_audit() -> Any:
    page = page_args(default=ADMIN_PAGE, maximum=MAX_ADMIN_PAGE)
    filters = {
        "start": int_arg("start", default=None, minimum=0),
        "end": int_arg("end", default=None, minimum=0),
        "actor": request.args.get("actor"),
        "resource": request.args.get("resource"),
    }
    return jsonify(list_object(*admin.list_audit(admin_context(), filters, page)))
