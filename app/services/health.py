"""Use case: is the gateway serving (`/health`), and may it take traffic (`/ready`)?

Health is about the backends, in the shape the deployment guides monitor:
`status` healthy or unhealthy, the first backend's `circuit_breaker` at the
top, every backend's below. Readiness adds the store, checked with a real
write: a database that is full, read-only or locked for too long makes the
gateway unready, so a load balancer sends its clients elsewhere.
"""

from __future__ import annotations

from typing import Any

from app.backends import Backends
from app.store import probe

HEALTHY, UNHEALTHY = "healthy", "unhealthy"


def health(backends: Backends, ready: bool = False) -> tuple[dict[str, Any], int]:
    """The health body and its status (503 when no backend, or with `ready` the store, works)."""
    states = [
        {"name": backend.name, "circuit_breaker": backend.breaker.state()}
        for backend in backends.all
    ]
    serving = any(not state["circuit_breaker"]["is_open"] for state in states)
    body: dict[str, Any] = {
        "status": HEALTHY if serving else UNHEALTHY,
        "circuit_breaker": states[0]["circuit_breaker"],
        "backends": states,
    }
    if ready:
        problem = probe.write_problem()
        body["store"] = {"writable": problem is None, "error": problem}
        serving = serving and problem is None
        body["status"] = HEALTHY if serving else UNHEALTHY
    return body, 200 if serving else 503
