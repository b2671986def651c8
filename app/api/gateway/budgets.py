"""/v1/gateway/budgets: shared budgets that keys count in (besides their own and their tenant's)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from app.api.gateway import ADMIN_PAGE, MAX_ADMIN_PAGE, admin_context, bp, once, with_etag
from app.api.http import json_body, page_args
from app.protocol.gateway import schemas
from app.protocol.gateway.objects import deleted_object
from app.protocol.responses.objects import list_object
from app.protocol.responses.schemas.errors import validate_body
from app.services.admin import budgets as use
from app.services.admin import expected_version


@bp.post("/budgets")
def create_budget() -> Any:
    body = json_body()
    validate_body(schemas.CREATE_BUDGET, body)
    return once(body, lambda: (201, use.create_budget(admin_context(), body)))


@bp.get("/budgets")
def list_budgets() -> Any:
    page = page_args(default=ADMIN_PAGE, maximum=MAX_ADMIN_PAGE)
    return jsonify(list_object(*use.list_budgets(admin_context(), page)))


@bp.get("/budgets/<budget_id>")
def get_budget(budget_id: str) -> Any:
    return with_etag(use.get_budget(admin_context(), budget_id))


@bp.patch("/budgets/<budget_id>")
def update_budget(budget_id: str) -> Any:
    body = json_body()
    validate_body(schemas.UPDATE_BUDGET, body)
    expected = expected_version(request.headers.get("If-Match"))
    return with_etag(use.update_budget(admin_context(), budget_id, body, expected))


@bp.delete("/budgets/<budget_id>")
def delete_budget(budget_id: str) -> Any:
    use.delete_budget(admin_context(), budget_id)
    return jsonify(deleted_object(budget_id, "budget"))
