"""Use case: the models a caller can use (`/v1/models`)."""

from __future__ import annotations

from typing import Any

from app.services.context import RequestContext, ServiceContext


def list_models(services: ServiceContext, context: RequestContext) -> dict[str, Any]:
    """The models of every configured backend that the caller may use, as an OpenAI list
    (the first backend naming one wins)."""
    principal = context.principal
    models = services.backends.list_models(principal)
    return {"object": "list", "data": [m for m in models if principal.may_use(m["id"])]}
