"""A small circuit breaker, one per backend, with an injectable clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from app.errors import BackendUnavailable

DEFAULT_FAILURE_THRESHOLD = 5
DEFAULT_RESET_SECONDS = 30.0


class CircuitBreaker:
    """Opens after N consecutive failures; lets one request through after a pause."""

    def __init__(
        self,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        reset_seconds: float = DEFAULT_RESET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.consecutive_failures = 0
        self.opened_at: float | None = None

    @property
    def is_open(self) -> bool:
        """Open, and not yet due for a trial request."""
        if self.opened_at is None:
            return False
        return self.clock() - self.opened_at < self.reset_seconds

    def check(self, name: str) -> None:
        """Raise `BackendUnavailable` while the circuit is open.

        Once the pause is over, the caller is the one trial request: the
        pause starts again for everyone else until the trial reports back.
        """
        if self.opened_at is None:
            return
        if not self.is_open:
            self.opened_at = self.clock()
            return
        raise BackendUnavailable(
            f"Backend '{name}' is failing; retrying it in at most {self.reset_seconds:g}s",
            code="circuit_open",
        )

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.failure_threshold:
            self.opened_at = self.clock()

    def state(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "is_open": self.is_open,
            "consecutive_failures": self.consecutive_failures,
        }
