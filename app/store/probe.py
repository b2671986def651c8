"""Can the store be written? The readiness probe's one real write.

A write that changes nothing writes nothing, and finds neither a full disk
nor a read-only database: so the probe renews a lease row of its own (the
smallest real write), and waits for the write lock only briefly.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from app.errors import StoreError
from app.store.models import GatewayLease, db
from app.store.writes import write_transaction

log = logging.getLogger(__name__)

PROBE_LEASE = "readiness-probe"
PROBE_WAIT_SECONDS = 2.0


def write_problem() -> str | None:
    """None when a write commits; else what the database said."""
    holder = f"{socket.gethostname()}:{os.getpid()}"[:128]
    try:
        with db.connection_context():
            write_transaction(lambda: _renew(holder), wait=PROBE_WAIT_SECONDS)
    except StoreError as exc:
        log.warning("readiness: %s", exc.message)
        return exc.message
    return None


def _renew(holder: str) -> None:
    GatewayLease.insert(name=PROBE_LEASE, holder=holder, expires_at=time.time()).on_conflict(
        conflict_target=[GatewayLease.name],
        update={GatewayLease.holder: holder, GatewayLease.expires_at: time.time()},
    ).execute()
