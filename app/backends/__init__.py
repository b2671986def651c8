"""Model servers: their connections, the APIs they speak, and which one serves a model.

`transport` owns the HTTP (pools, timeouts, the socket read of a stream,
errors translated once), `inflight` the calls that can be cut, `dialects`
one module per API behind one `Backend` interface, `routing` the choice of
backend for a model. Each worker makes its backends in `init_app`.
"""

from __future__ import annotations

from typing import Any

from app.backends.dialects import Backend
from app.backends.inflight import CallCut, CallHandle
from app.backends.routing import Backends
from app.backends.transport import BodyStream
from app.config import Settings

__all__ = ["Backend", "Backends", "BodyStream", "CallCut", "CallHandle", "init_app"]


def init_app(app: Any, settings: Settings) -> None:
    """Create this worker's backends."""
    app.extensions["backends"] = Backends(settings)
