"""/v1/gateway/prices, /ledger(.csv), /usage/summary(.csv), /tenants/{id}/usage, /metrics."""

from __future__ import annotations

import itertools
from typing import Any

from flask import Response, current_app, jsonify, request, stream_with_context

from app.api.gateway import ADMIN_PAGE, MAX_ADMIN_PAGE, admin_context, bp
from app.api.http import int_arg, json_body, page_args
from app.errors import InvalidRequest
from app.protocol.gateway import schemas
from app.protocol.gateway.schemas import MAX_TIME
from app.protocol.responses.objects import list_object
from app.protocol.responses.schemas.errors import validate_body
from app.services.admin import usage as use

LEDGER_FILTERS = ("key_id", "model", "status", "project_id", "user_id")
LEDGER_STATUSES = ("completed", "incomplete", "failed", "cancelled", "client_disconnected")
CSV = "text/csv; charset=utf-8"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def ledger_filters() -> dict[str, Any]:
    filters: dict[str, Any] = {name: request.args.get(name) for name in LEDGER_FILTERS}
    if filters["status"] is not None and filters["status"] not in LEDGER_STATUSES:
        raise InvalidRequest(
            f"Invalid 'status': expected one of {', '.join(LEDGER_STATUSES)}.", param="status"
        )
    filters["start"] = int_arg("start", default=None, minimum=0, maximum=MAX_TIME)
    filters["end"] = int_arg("end", default=None, minimum=0, maximum=MAX_TIME)
    return filters


def group_by() -> list[str]:
    text = request.args.get("group_by", "")
    return [name.strip() for name in text.split(",") if name.strip()]


@bp.get("/prices")
def get_prices() -> Any:
    return jsonify(use.get_prices(admin_context(), request.args.get("tenant_id")))


@bp.put("/prices")
def put_prices() -> Any:
    body = json_body()
    validate_body(schemas.PUT_PRICES, body)
    return jsonify(use.put_prices(admin_context(), body))


@bp.get("/ledger")
def list_ledger() -> Any:
    filters = ledger_filters()
    page = page_args(default=ADMIN_PAGE, maximum=MAX_ADMIN_PAGE)
    if page["order"] != "desc" or page["before"] is not None:
        raise InvalidRequest(
            "The ledger pages newest first, with 'after' only.",
            param="order" if page["order"] != "desc" else "before",
        )
    entries, more = use.list_ledger(admin_context(), filters, page["limit"], page["after"])
    return jsonify(list_object(entries, more))


@bp.get("/ledger.csv")
def ledger_csv() -> Any:
    lines = use.ledger_csv(admin_context(), ledger_filters())
    return _csv(lines, "ledger.csv")


@bp.get("/usage/summary")
def usage_summary() -> Any:
    rows = use.summary(admin_context(), ledger_filters(), group_by())
    return jsonify({"object": "gateway.usage_summary", "group_by": group_by(), "data": rows})


@bp.get("/usage/summary.csv")
def usage_summary_csv() -> Any:
    groups = group_by()
    rows = use.summary(admin_context(), ledger_filters(), groups)
    return _csv(use.summary_csv(rows, use.summary_columns(groups)), "usage-summary.csv")


@bp.get("/tenants/<tenant_id>/usage")
def tenant_usage(tenant_id: str) -> Any:
    return jsonify(use.tenant_usage(admin_context(), tenant_id, ledger_filters()))


@bp.get("/metrics")
def usage_metrics() -> Any:
    known = set(current_app.extensions["model_labels"].known)
    by_tenant = current_app.extensions["settings"].auth.metrics_tenant_label
    return Response(use.metrics_text(admin_context(), known, by_tenant), mimetype=PROMETHEUS)


def _csv(lines: Any, filename: str) -> Response:
    """Stream `lines`; the header and the first row are made first, so that a query that
    fails does so before the 200, as an error response."""
    lines = iter(lines)
    first = [line for line in (next(lines, None), next(lines, None)) if line is not None]
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    body = stream_with_context(itertools.chain(first, lines))
    return Response(body, mimetype=CSV, headers=headers)
