"""Which backend serves a model: the configured backends, in order."""

from __future__ import annotations

from typing import Any

from app.auth.principal import Principal
from app.backends.dialects import Backend, make_backend
from app.config import Settings
from app.errors import NotFound


class Backends:
    """All configured backends, routed by model name (the first that serves it)."""

    def __init__(self, settings: Settings) -> None:
        self.all = [make_backend(backend) for backend in settings.backends]

    @property
    def read_timeout(self) -> float:
        """The longest a backend may stay silent."""
        return max(backend.settings.read_timeout for backend in self.all)

    def for_model(self, model: str) -> Backend:
        """Return the first backend configured for `model`."""
        for backend in self.all:
            if backend.settings.serves(model):
                return backend
        raise NotFound(
            f"The model '{model}' does not exist.", param="model", code="model_not_found"
        )

    def list_models(self, principal: Principal) -> list[dict[str, Any]]:
        """Every backend's models; a model two backends list is the first's."""
        seen: dict[str, dict[str, Any]] = {}
        for backend in self.all:
            for model in backend.list_models(principal):
                seen.setdefault(model["id"], model)
        return list(seen.values())
