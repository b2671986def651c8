"""/health (backends) and /ready (backends and a store write): for monitors and load balancers."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from app.api.http import flag_arg, services
from app.services.health import health as health_report

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Any:
    body, status = health_report(services().backends, ready=flag_arg("ready"))
    return jsonify(body), status


@bp.get("/ready")
def ready() -> Any:
    body, status = health_report(services().backends, ready=True)
    return jsonify(body), status
