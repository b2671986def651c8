"""/health: is the gateway serving, and the state of each backend's breaker."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from app.api.http import gateway

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Any:
    backends = gateway().backends.all
    states = [
        {"name": backend.name, "circuit_breaker": backend.breaker.state()} for backend in backends
    ]
    serving = any(not state["circuit_breaker"]["is_open"] for state in states)
    body = {"status": "ok" if serving else "unavailable", "backends": states}
    return jsonify(body), 200 if serving else 503
