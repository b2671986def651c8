"""Budget alerts: a signed POST to the operator's webhook when a budget crosses its soft
limit or 50, 80 or 100 % of its limit - once per threshold and period, whichever worker
or node settles the request that crossed it.

The claim is a compare-and-set on the budget row (`alerted_level`,
`alerted_period`) in the transaction that charges the request, so only one
settlement tells each threshold; the POST goes out after that transaction
commits, from a background thread, retried a few times. Its body is JSON;
`X-Gateway-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">` with
the webhook's secret lets the receiver check it and refuse replays.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PERCENTS = (50, 80, 100)
ATTEMPTS = 3
TIMEOUT = 10.0
EVENT = "budget.threshold"


def thresholds(limit: int, soft: int | None) -> list[tuple[int, str]]:
    """(amount in µUSD, name) of a budget's alerts, smallest first."""
    marks = [(-(-limit * percent // 100), f"{percent}%") for percent in PERCENTS]
    if soft is not None:
        marks.append((soft, "soft"))
    return sorted(marks)


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True)
class Webhook:
    url: str
    secret: bytes

    def send(self, alerts: list[dict[str, Any]]) -> None:
        """POST each alert from a background thread (the request does not wait)."""
        if alerts:
            threading.Thread(target=self._deliver, args=(alerts,), daemon=True).start()

    def _deliver(self, alerts: list[dict[str, Any]]) -> None:
        import requests

        for alert in alerts:
            body = json.dumps(alert).encode()
            for attempt in range(ATTEMPTS):
                headers = {
                    "Content-Type": "application/json",
                    "X-Gateway-Event": EVENT,
                    "X-Gateway-Signature": signature(self.secret, int(time.time()), body),
                }
                try:
                    answer = requests.post(self.url, data=body, headers=headers, timeout=TIMEOUT)
                    if answer.status_code < 300:
                        break
                    problem = f"HTTP {answer.status_code}"
                except requests.RequestException as exc:
                    problem = str(exc)
                log.warning("budget webhook %s, attempt %d: %s", self.url, attempt + 1, problem)
                time.sleep(2**attempt)
