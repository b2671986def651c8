"""/metrics: Prometheus exposition of every worker's counters."""

from __future__ import annotations

from flask import Blueprint, Response

from app.observe import metrics_payload

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    payload, content_type = metrics_payload()
    return Response(payload, content_type=content_type)
