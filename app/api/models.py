"""/v1/models: the models of every configured backend."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from app.api.http import client_key, gateway

bp = Blueprint("models", __name__, url_prefix="/v1/models")


@bp.get("")
def list_models() -> Any:
    return jsonify({"object": "list", "data": gateway().backends.list_models(client_key())})
