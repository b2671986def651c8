"""Budgets, rate windows and parallel slots: each check is the write that takes the share.

Nothing here reads a count and then decides: a budget is reserved by one
conditional UPDATE (`spent + reserved + estimate <= limit`, the period
rolled inside the same statement), a minute's requests and tokens by one
conditional upsert, a parallel slot likewise. PostgreSQL re-checks such a
WHERE on the row it locked, and SQLite runs one writer at a time, so N
concurrent requests whose estimates exceed a budget admit exactly the
number that fits, on any number of workers and nodes. The caller runs
`admit` in one transaction; a refusal of any part gives back what the parts
before it took, in that transaction, so the refusal leaves nothing behind
even when the transaction is shared with other requests' writes
(app/store/writes.py).

`settle` is the other half, in the transaction that stores the response:
the reservation row is deleted, and only the caller that deleted it takes
the reserved amount back, so a reservation is released exactly once even
when the sweeper (`release_expired`) got there first.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.protocol.ids import new_id
from app.store.models import RateWindow, Reservation, db
from app.store.writes import Refusal, insert_rows

UNLIMITED = 2**62
WINDOW_SECONDS = 60
KEEP_WINDOWS_SECONDS = 2 * WINDOW_SECONDS

RESERVE_BUDGET = (
    "UPDATE budgets SET "
    "spent_micros = CASE WHEN period_start < {p} THEN 0 ELSE spent_micros END, "
    "period_start = CASE WHEN period_start < {p} THEN {p} ELSE period_start END, "
    "reserved_micros = reserved_micros + {p} "
    "WHERE id = {p} AND "
    "(CASE WHEN period_start < {p} THEN 0 ELSE spent_micros END) + reserved_micros + {p} "
    "<= limit_micros"
)
TAKE_WINDOW = (
    "INSERT INTO rate_windows (key_id, window_start, requests, tokens) VALUES ({p}, {p}, 1, {p}) "
    "ON CONFLICT (key_id, window_start) DO UPDATE SET "
    "requests = rate_windows.requests + 1, tokens = rate_windows.tokens + excluded.tokens "
    "WHERE rate_windows.requests + 1 <= {p} AND rate_windows.tokens + excluded.tokens <= {p} "
    "RETURNING requests, tokens"
)
# A charge counts in the period current when the request ends, rolling it like a
# reservation does (the right-hand sides read the row as it was).
CHARGE_AND_RELEASE = (
    "UPDATE budgets SET "
    "spent_micros = (CASE WHEN period_start < {p} THEN 0 ELSE spent_micros END) + {p}, "
    "period_start = CASE WHEN period_start < {p} THEN {p} ELSE period_start END, "
    "reserved_micros = reserved_micros - {p} "
    "WHERE id = {p}"
)
DROP_RESERVATION = "DELETE FROM reservations WHERE id = {p}"
RELEASE_SLOT = "UPDATE key_inflight SET inflight = inflight - 1 WHERE key_id = {p} AND inflight > 0"
CORRECT_TOKENS = (
    "UPDATE rate_windows SET tokens = tokens + {p} WHERE key_id = {p} AND window_start = {p}"
)
UNTAKE_WINDOW = (
    "UPDATE rate_windows SET requests = requests - 1, tokens = tokens - {p} "
    "WHERE key_id = {p} AND window_start = {p}"
)
UNRESERVE_BUDGET = "UPDATE budgets SET reserved_micros = reserved_micros - {p} WHERE id = {p}"
TAKE_SLOT = (
    "INSERT INTO key_inflight (key_id, inflight) VALUES ({p}, 1) "
    "ON CONFLICT (key_id) DO UPDATE SET inflight = key_inflight.inflight + 1 "
    "WHERE key_inflight.inflight + 1 <= {p} RETURNING inflight"
)


class Refused(Refusal):
    """A limit said no: `which` is `requests`, `tokens`, `parallel` or `budget`.

    Raised having given back whatever the admission took before it.
    """

    def __init__(self, which: str, window: WindowUse | None = None, budget_id: str = "") -> None:
        super().__init__(which)
        self.which = which
        self.window = window
        self.budget_id = budget_id


@dataclass(frozen=True)
class WindowUse:
    """A key's minute: what it allows and what it has used (headers are made from it)."""

    start: int
    requests: int
    tokens: int
    rpm: int | None
    tpm: int | None

    @property
    def reset_seconds(self) -> int:
        return max(1, self.start + WINDOW_SECONDS - int(time.time()))


@dataclass(frozen=True)
class Held:
    """What an admitted request holds until `settle`."""

    reservation_id: str
    budget_ids: tuple[str, ...]
    amount: int
    tokens: int
    window: WindowUse | None
    slot: bool


def _sql(template: str) -> str:
    return _with_param(template, db.param)


@functools.lru_cache(maxsize=64)
def _with_param(template: str, param: str) -> str:
    return template.replace("{p}", param)


def _one(sql: str, params: Sequence[object]) -> tuple | None:
    return db.execute_sql(_sql(sql), params).fetchone()


def admit(
    key_id: str,
    *,
    rpm: int | None,
    tpm: int | None,
    max_parallel: int | None,
    tokens: int,
    budgets: Sequence[tuple[str, int]],
    amount: int,
    ttl: int,
    now: float | None = None,
) -> Held:
    """Take a minute's share, a parallel slot and every budget's reservation, or raise `Refused`.

    `budgets` are (budget id, start of its current period). Run inside the
    caller's write transaction, which a refusal must roll back.
    """
    now = time.time() if now is None else now
    window = None
    if rpm is not None or tpm is not None:
        window = _take_window(key_id, minute_start(now), rpm, tpm, tokens)
    slot = max_parallel is not None
    if slot and _one(TAKE_SLOT, (key_id, max_parallel)) is None:
        _give_back(key_id, window, tokens, False, amount, [])
        raise Refused("parallel", window)
    reserved: list[str] = []
    for budget_id, period_start in sorted(budgets):  # one order everywhere: no deadlock
        params = (period_start,) * 3 + (amount, budget_id, period_start, amount)
        if db.execute_sql(_sql(RESERVE_BUDGET), params).rowcount != 1:
            _give_back(key_id, window, tokens, slot, amount, reserved)
            raise Refused("budget", window, budget_id)
        reserved.append(budget_id)
    held = Held(
        reservation_id=new_id("rsv"),
        budget_ids=tuple(sorted(budget for budget, _ in budgets)),
        amount=amount,
        tokens=tokens,
        window=window,
        slot=max_parallel is not None,
    )
    row = {
        "id": held.reservation_id,
        "key_id": key_id,
        "budget_ids": ",".join(held.budget_ids),
        "amount_micros": amount,
        "tokens": tokens,
        "window_start": window.start if window else None,
        "holds_slot": held.slot,
        "created_at": int(now),
        "expires_at": int(now) + ttl,
    }
    insert_rows(Reservation, [row])  # SQL made once: this runs on every admitted request
    return held


def _give_back(
    key_id: str,
    window: WindowUse | None,
    tokens: int,
    slot: bool,
    amount: int,
    budget_ids: Sequence[str],
) -> None:
    """Undo what a refused admission took before the refusal (it may share a transaction)."""
    if window is not None:
        db.execute_sql(_sql(UNTAKE_WINDOW), (tokens, key_id, window.start))
    if slot:
        _release_slot(key_id)
    for budget_id in budget_ids:
        db.execute_sql(_sql(UNRESERVE_BUDGET), (amount, budget_id))


def minute_start(now: float) -> int:
    """The start of the minute `now` counts in."""
    return int(now) // WINDOW_SECONDS * WINDOW_SECONDS


def minute_caps(start: int, rpm: int | None, tpm: int | None, tokens: int) -> tuple[int, int]:
    """The requests and tokens a minute may hold; `Refused` for a request no minute holds."""
    requests_cap, tokens_cap = rpm or UNLIMITED, UNLIMITED if tpm is None else tpm
    if tokens > tokens_cap:  # not even an empty minute would hold it
        raise Refused("tokens", WindowUse(start, 0, 0, rpm, tpm))
    return requests_cap, tokens_cap


def _take_window(
    key_id: str, start: int, rpm: int | None, tpm: int | None, tokens: int
) -> WindowUse:
    requests_cap, tokens_cap = minute_caps(start, rpm, tpm, tokens)
    row = _one(TAKE_WINDOW, (key_id, start, tokens, requests_cap, tokens_cap))
    if row is not None:
        return WindowUse(start, row[0], row[1], rpm, tpm)
    used = (
        RateWindow.select(RateWindow.requests, RateWindow.tokens)
        .where((RateWindow.key_id == key_id) & (RateWindow.window_start == start))
        .tuples()
        .first()
    ) or (0, 0)
    window = WindowUse(start, used[0], used[1], rpm, tpm)
    raise Refused("requests" if used[0] + 1 > requests_cap else "tokens", window)


def settle(
    held: Held, key_id: str, cost: int, tokens: int, periods: dict[str, int] | None = None
) -> None:
    """Charge what the request cost and give back what it held (in the caller's write).

    `periods`: each budget's period now (its start; absent: the one it holds).
    Rows are taken in `admit`'s order (window, slot, budgets by id), so on
    PostgreSQL an admission and a settlement of one key never wait on each
    other in a circle.
    """
    released = db.execute_sql(_sql(DROP_RESERVATION), (held.reservation_id,)).rowcount
    if held.window is not None and tokens != held.tokens:
        params = (tokens - held.tokens, key_id, held.window.start)
        db.execute_sql(_sql(CORRECT_TOKENS), params)
    if released and held.slot:
        _release_slot(key_id)
    amount = held.amount if released else 0  # the sweep gave it back already
    for budget_id in held.budget_ids:  # sorted, as admit takes them
        period = (periods or {}).get(budget_id, 0)
        params = (period, cost, period, period, amount, budget_id)
        db.execute_sql(_sql(CHARGE_AND_RELEASE), params)


def _release_slot(key_id: str) -> None:
    db.execute_sql(_sql(RELEASE_SLOT), (key_id,))


def expired_reservations(now: float, limit: int = 100) -> list[str]:
    query = Reservation.select(Reservation.id).where(Reservation.expires_at <= now).limit(limit)
    return [row[0] for row in query.tuples()]


def release_expired(reservation_id: str) -> bool:
    """Give back what a reservation whose request never settled held (in the caller's write)."""
    row = Reservation.get_or_none(Reservation.id == reservation_id)
    if row is None or not Reservation.delete().where(Reservation.id == reservation_id).execute():
        return False
    if row.holds_slot:  # admit's order: the slot, then the budgets by id
        _release_slot(row.key_id)
    for budget_id in sorted(filter(None, row.budget_ids.split(","))):
        db.execute_sql(_sql(UNRESERVE_BUDGET), (row.amount_micros, budget_id))
    return True


def forget_windows(now: float) -> int:
    """Delete the minutes no limit looks at any more."""
    cutoff = int(now) - KEEP_WINDOWS_SECONDS
    return RateWindow.delete().where(RateWindow.window_start < cutoff).execute()


READ_ALERT_STATE = (
    "SELECT id, tenant_id, kind, limit_micros, soft_limit_micros, spent_micros, period_start, "
    "alerted_level, alerted_period FROM budgets WHERE id = {p}"
)
CLAIM_ALERTS = (
    "UPDATE budgets SET alerted_level = {p}, alerted_period = {p} "
    "WHERE id = {p} AND alerted_level = {p} AND alerted_period = {p}"
)


def claim_alerts(budget_ids: Sequence[str], thresholds: Any) -> list[dict]:
    """The alerts this settlement crossed and, by a compare-and-set, now owns the telling of.

    `thresholds(limit, soft)` gives a budget's (amount, name) marks,
    smallest first. Run in the settling transaction, after the charge.
    """
    alerts = []
    for budget_id in budget_ids:
        row = _one(READ_ALERT_STATE, (budget_id,))
        if row is None:
            continue
        _, tenant_id, kind, limit, soft, spent, period_start, level, period = row
        marks = thresholds(limit, soft)
        told = level if period == period_start else 0
        crossed = sum(1 for amount, _ in marks if spent >= amount)
        if crossed <= told:
            continue
        params = (crossed, period_start, budget_id, level, period)
        if db.execute_sql(_sql(CLAIM_ALERTS), params).rowcount != 1:
            continue  # another settlement told them
        for amount, name in marks[told:crossed]:
            alerts.append(
                {
                    "type": "budget.threshold",
                    "budget_id": budget_id,
                    "tenant_id": tenant_id,
                    "kind": kind,
                    "threshold": name,
                    "threshold_usd": amount / 1_000_000,
                    "spent_usd": spent / 1_000_000,
                    "limit_usd": limit / 1_000_000,
                    "period_start": period_start,
                    "created_at": int(time.time()),
                }
            )
    return alerts
