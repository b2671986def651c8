"""One module per API a backend may speak, behind `Backend` (app/backends/dialects/base.py).

`make_backend` picks the class by the backend's `api` setting; a new API
is a module here and a line in `DIALECTS`.
"""

from __future__ import annotations

from app.backends.dialects.base import Backend
from app.backends.dialects.chat import ChatBackend
from app.config import BackendSettings

DIALECTS: dict[str, type[Backend]] = {"chat": ChatBackend}

__all__ = ["DIALECTS", "Backend", "make_backend"]


def make_backend(settings: BackendSettings) -> Backend:
    """The backend for `settings`, of the class its `api` names."""
    return DIALECTS[settings.api](settings)
