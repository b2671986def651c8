"""Use case: the models a caller can use (`/v1/models`)."""

from __future__ import annotations

from typing import Any

from app.services.context import RequestContext, ServiceContext


def list_models(services: ServiceContext, context: RequestContext) -> dict[str, Any]:
    """Every configured backend's models, as an OpenAI list (the first backend naming one wins)."""
    return {"object": "list", "data": services.backends.list_models(context.principal)}
