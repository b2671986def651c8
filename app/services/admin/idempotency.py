"""`Idempotency-Key` on the admin plane's POSTs: a retry gets the first answer again.

The first request with a key claims it (a row with its body's SHA-256 and
no answer yet, committed at once); its change then commits in one
transaction with its answer, sealed with the server's key (the answer may
hold a secret shown once). A retry with the same body replays that
answer; with another body it is a 409 `idempotency_key_reused`; while the
first still runs, a 409 `idempotency_key_in_progress`. A claim whose
request failed is let go, so the retry runs anew; one whose worker died
lapses after `CLAIM_SECONDS`. Replays are kept 24 hours.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from app.errors import Conflict, InvalidRequest
from app.protocol.sealed import open_sealed, seal
from app.services.admin import AdminContext
from app.store import replays
from app.store.writes import write_transaction

KEPT_SECONDS = 24 * 3600
CLAIM_SECONDS = 60
MAX_KEY = 255

Answer = tuple[int, dict[str, Any]]


def run_once(
    context: AdminContext, key: str | None, body: Any, run: Callable[[], Answer]
) -> tuple[Answer, bool]:
    """Run `run` once per key (without one: every time); return its answer and whether replayed.

    `body` is the request's parsed JSON: the same value sent with other
    spacing or key order is the same request.
    """
    if key is None:
        return run(), False
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise InvalidRequest(
            f"Invalid Idempotency-Key: 1 to {MAX_KEY} printable characters.",
            param="Idempotency-Key",
            code="invalid_header",
        )
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    actor, digest = context.admin.actor, hashlib.sha256(canonical).hexdigest()
    replay = write_transaction(lambda: _claim(context, actor, key, digest))
    if replay is not None:
        return replay, True
    try:
        return write_transaction(lambda: _answer(context, actor, key, run())), False
    except BaseException:
        write_transaction(lambda: replays.release(actor, key))
        raise


def _claim(context: AdminContext, actor: str, key: str, digest: str) -> Answer | None:
    """Claim `key` for this request, or return the answer to replay (or refuse)."""
    now = int(time.time())
    kept = replays.live_replay(actor, key, now)
    if kept is not None:
        kept_digest, status, sealed = kept
        if kept_digest != digest:
            raise Conflict(
                "This Idempotency-Key was used with another request body.",
                param="Idempotency-Key",
                code="idempotency_key_reused",
            )
        if status is None:
            raise _in_progress()
        opened = open_sealed(sealed, context.replay_key)
        if opened is not None:
            return status, json.loads(opened)
        # Sealed under another server secret: it cannot be replayed; run anew.
    if not replays.claim(actor, key, digest, now + CLAIM_SECONDS):
        raise _in_progress()  # claimed by another request between our read and insert
    return None


def _in_progress() -> Conflict:
    return Conflict(
        "A request with this Idempotency-Key is still running: retry later.",
        param="Idempotency-Key",
        code="idempotency_key_in_progress",
    )


def _answer(context: AdminContext, actor: str, key: str, answer: Answer) -> Answer:
    """Keep the answer of the change made in this same transaction."""
    status, payload = answer
    sealed = seal(json.dumps(payload), context.replay_key)
    replays.keep_answer(actor, key, status, sealed, int(time.time()) + KEPT_SECONDS)
    return answer


def forget_lapsed(now: float | None = None) -> int:
    """Delete replays kept past their 24 hours (the sweeper calls it)."""
    now = time.time() if now is None else now
    return write_transaction(lambda: replays.forget_lapsed(now))
