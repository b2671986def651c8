"""Use case: sweep the store (expired responses, conversations and files, old events, dead
runners).

A sweep removes, batch by batch, what retention no longer shows, and files
past their `expires_at` with their bytes (and bytes no file names), prunes
the events of background responses that ended a grace period ago, fails
background responses whose runner died, forgets the admin plane's
idempotent replays after their 24 hours, releases budget reservations and
parallel slots of requests that never settled, and on SQLite gives freed pages
back to the file system. Between batches it yields, so a worker sweeping
goes on serving.

Every worker runs `keep_sweeping` (started after it boots); a lease in the
store lets one of them, on one node, sweep each interval. `gateway sweep`
(for a cron job or the shipped systemd timer) takes the same lease.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from dataclasses import asdict, dataclass

from app.services import background, limits
from app.services.admin.idempotency import forget_lapsed
from app.store import db, files, retention
from app.store.blobs import BlobStore

log = logging.getLogger(__name__)

SWEEP_LEASE = "sweep"
LEASE_PER_INTERVAL = 1.5  # the lease outlives a sweep that runs late, not a dead holder for long
JITTER = 0.1  # workers started together do not all wake at once
MAX_RECLAIM_STEPS = 10_000


@dataclass
class SweepReport:
    """What one sweep removed."""

    responses: int = 0
    conversations: int = 0
    event_streams: int = 0
    abandoned: int = 0
    replays: int = 0
    reservations: int = 0  # held by requests that never settled (their worker died)
    files: int = 0
    stray_bytes: int = 0  # files' bytes no row names, and uploads abandoned midway
    pages_reclaimed: int = 0

    def __bool__(self) -> bool:
        return any(asdict(self).values())


def sweep(blobs: BlobStore | None = None) -> SweepReport:
    """Run one sweep to its end, a short transaction per batch (files' bytes in `blobs`)."""
    report = SweepReport()
    with db.connection_context():
        report.abandoned = background.reap_abandoned()
        report.replays = forget_lapsed()
        report.reservations = limits.release_expired()
        for field, step in (
            ("responses", retention.expire_responses),
            ("conversations", retention.expire_conversations),
            ("event_streams", retention.prune_events),
        ):
            while removed := step():
                setattr(report, field, getattr(report, field) + removed)
                time.sleep(0)  # a cooperative yield under gevent
        if blobs is not None:
            report.files, report.stray_bytes = _sweep_files(blobs)
        report.pages_reclaimed = _reclaim_pages()
    return report


def _sweep_files(blobs: BlobStore) -> tuple[int, int]:
    expired = 0
    while batch := files.expire_files(int(time.time())):
        for file_id in batch:
            blobs.remove(file_id)
        expired += len(batch)
        time.sleep(0)
    return expired, blobs.orphans(files.known_ids)


def _reclaim_pages() -> int:
    if not retention.incremental():
        return 0
    before = left = retention.free_pages()
    for _ in range(MAX_RECLAIM_STEPS):
        if not left:
            break
        left = retention.reclaim_pages()
        time.sleep(0)
    return before - left


def sweep_holder() -> str:
    """Who holds the sweep lease: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


def sweep_if_due(interval: float, blobs: BlobStore | None = None) -> SweepReport | None:
    """Sweep if no other worker holds the lease for this interval; None if one does."""
    with db.connection_context():
        if not retention.take_lease(SWEEP_LEASE, sweep_holder(), interval * LEASE_PER_INTERVAL):
            return None
    return sweep(blobs)


def keep_sweeping(interval: float, stop: threading.Event, blobs: BlobStore | None = None) -> None:
    """Sweep every `interval` seconds (when this worker wins the lease) until `stop` is set."""
    while not stop.wait(interval * random.uniform(1 - JITTER, 1 + JITTER)):
        try:
            report = sweep_if_due(interval, blobs)
        except Exception:  # a failed sweep is tried again next interval; serving goes on
            log.exception("sweeping the store failed")
            continue
        if report:
            log.info("store swept: %s", " ".join(f"{k}={v}" for k, v in asdict(report).items()))


def start_sweeping(interval: float, blobs: BlobStore | None = None) -> threading.Event | None:
    """Start `keep_sweeping` beside this worker's requests; return the event that stops it."""
    if not interval:
        return None
    stop = threading.Event()
    threading.Thread(
        target=keep_sweeping, args=(interval, stop, blobs), name="store-sweeper", daemon=True
    ).start()
    return stop
