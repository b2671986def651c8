"""/v1/models: the models of every configured backend."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from app.api.http import request_context, services
from app.services.models import list_models

bp = Blueprint("models", __name__, url_prefix="/v1/models")


@bp.get("")
def models() -> Any:
    return jsonify(list_models(services(), request_context()))
