"""Admission and settlement of a virtual key's request: limits, budgets, the ledger row.

`admit` runs last in `prepare`, once the request is known to be valid:
it estimates the request (input from the body sent, output from
`max_output_tokens` or the price's cap), prices the estimate, and takes
the key's minute, a parallel slot and a reservation in every budget the key
counts in, in one transaction (app/store/limits.py) - or refuses with a
429 before anything is sent. `settle` runs in the transaction that stores
the response, whatever its end (completed, incomplete, failed, cancelled,
the client gone): it charges the cost of the usage seen, gives back the
reservation, and writes the ledger row. When the backend reported no
usage, the output is counted from what was produced (four characters a
token) and the row says `estimated`.

Passthrough callers (no key id) are neither limited nor in the ledger.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from app.auth.principal import BudgetRef, Principal
from app.errors import GatewayError, InvalidRequest, QuotaExceeded, RateLimited
from app.protocol.ids import new_id
from app.services import alerts
from app.services.alerts import Webhook
from app.store import db, ledger, prices
from app.store import limits as store
from app.store.counters import Counted, RedisCounters
from app.store.prices import PriceRow
from app.store.writes import write_transaction

log = logging.getLogger(__name__)

DEFAULT_OUTPUT_CAP = 4096  # reserved when neither the request nor the price names a cap
CHARS_PER_TOKEN = 4
RESERVATION_SECONDS = 3600  # a request not settled by then is released by the sweep
PRICE_CACHE_SECONDS = 5.0
MICROS = 1_000_000
ENDPOINT = "responses"


@dataclass
class Admission:
    """One admitted request of a key: what it holds, and what its ledger row will say."""

    principal: Principal
    model: str
    stream: bool
    started: int
    price: PriceRow | None
    input_estimate: int
    reserved: int
    held: store.Held | None
    counted: Counted | None = None  # what it holds in Redis (rate limits counted there)
    counters: RedisCounters | None = None
    used_tokens: int = 0  # what it used in the end (the minute's count is corrected to it)
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False
    disconnected: bool = False
    webhook: Webhook | None = None  # where the budgets' alerts go
    alerts: list[dict[str, Any]] = field(default_factory=list)  # to send once committed


_price_cache: dict[tuple[int, str, str], tuple[PriceRow | None, float]] = {}


def price_of(tenant_id: str, model: str) -> PriceRow | None:
    """The model's price for the tenant, read at most every few seconds per worker."""
    now = time.monotonic()
    where = (id(db.obj), tenant_id, model)  # a process may serve more than one store (tests)
    cached = _price_cache.get(where)
    if cached is not None and now - cached[1] < PRICE_CACHE_SECONDS:
        return cached[0]
    price = prices.price_of(tenant_id, model)
    if len(_price_cache) > 10_000:
        _price_cache.clear()
    _price_cache[where] = (price, now)
    return price


def forget_prices() -> None:
    _price_cache.clear()


def cost_micros(price: PriceRow | None, input_tokens: int, cached: int, output: int) -> int:
    """What the tokens cost at `price`, in micro-USD, rounded up (0 unpriced)."""
    if price is None:
        return 0
    cached = min(cached, input_tokens)
    total = (
        (input_tokens - cached) * price.input_micros
        + cached * price.cached_input_micros
        + output * price.output_micros
    )
    return -(-total // MICROS)


def estimate_tokens(body: Any) -> int:
    """A generous count of the tokens of what is sent: its JSON, four characters a token."""
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return -(-len(text) // CHARS_PER_TOKEN)


def period_start(budget: BudgetRef, now: float) -> int:
    """The start of the budget's current period, in its time zone (0: it never rolls)."""
    if budget.period == "none":
        return 0
    zone = timezone.utc if budget.timezone == "UTC" else ZoneInfo(budget.timezone)
    local = datetime.fromtimestamp(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    if budget.period == "weekly":
        local -= timedelta(days=local.weekday())
    elif budget.period == "monthly":
        local = local.replace(day=1)
    return int(local.timestamp())


def admit(
    principal: Principal,
    request: dict[str, Any],
    sent: Any,
    webhook: Webhook | None = None,
    counters: RedisCounters | None = None,
) -> Admission | None:
    """Admit a key's request or raise 429 (limits, budgets) or 400 (an unpriced model).

    With `counters` (Redis), the rate limits are taken there first, and the
    database reserves the budgets only (no write at all for a key without one).
    """
    if principal.key_id is None:
        return None
    model = request["model"]
    limits = principal.limits
    price = price_of(principal.tenant_id, model)
    if limits.budgets and price is None:
        raise InvalidRequest(
            f"The model '{model}' has no price, and this key has a budget: "
            "an admin must price it first (PUT /v1/gateway/prices).",
            param="model",
            code="model_price_unknown",
        )
    now = time.time()
    admission = Admission(
        principal=principal,
        model=model,
        stream=bool(request.get("stream")),
        started=int(now),
        price=price,
        input_estimate=estimate_tokens(sent),
        reserved=0,
        held=None,
        webhook=webhook,
    )
    if not limits.any():
        return admission
    output_cap = request.get("max_output_tokens") or (
        price.max_output_tokens if price and price.max_output_tokens else DEFAULT_OUTPUT_CAP
    )
    tokens = admission.input_estimate + output_cap
    amount = cost_micros(price, admission.input_estimate, 0, output_cap)
    budgets = [(budget.id, period_start(budget, now)) for budget in limits.budgets]
    rated = limits.rpm is not None or limits.tpm is not None or limits.max_parallel is not None
    in_redis = counters is not None and rated
    if in_redis:
        assert counters is not None
        try:
            admission.counted = counters.take(
                principal.key_id,
                new_id("req"),
                rpm=limits.rpm,
                tpm=limits.tpm,
                max_parallel=limits.max_parallel,
                tokens=tokens,
                ttl=RESERVATION_SECONDS,
                now=now,
            )
        except store.Refused as refused:
            raise _refusal(refused, limits.max_parallel) from None
        admission.counters = counters
    if budgets or not in_redis:
        try:
            admission.held = write_transaction(
                lambda: store.admit(
                    principal.key_id,
                    rpm=None if in_redis else limits.rpm,
                    tpm=None if in_redis else limits.tpm,
                    max_parallel=None if in_redis else limits.max_parallel,
                    tokens=tokens,
                    budgets=budgets,
                    amount=amount,
                    ttl=RESERVATION_SECONDS,
                    now=now,
                ),
                shared=True,
            )
        except BaseException as exc:  # refused or failed: what Redis took goes back
            _give_back_counted(admission, None)
            if isinstance(exc, store.Refused):
                raise _refusal(exc, limits.max_parallel) from None
            raise
    admission.reserved = amount
    window = admission.counted.window if admission.counted else admission.held.window
    admission.headers = rate_headers(window)
    return admission


def _give_back_counted(admission: Admission, tokens_used: int | None) -> None:
    """End what a request holds in Redis (None: refused, all of it back); log a failure
    (its slot lapses by itself)."""
    if admission.counted is None or admission.counters is None:
        return
    counted, admission.counted = admission.counted, None
    try:
        admission.counters.give_back(admission.principal.key_id, counted, tokens_used)
    except GatewayError as exc:
        log.error("key %s: %s", admission.principal.key_id, exc.message)


def rate_headers(window: store.WindowUse | None) -> dict[str, str]:
    """OpenAI's `x-ratelimit-*` headers for a key's minute."""
    if window is None:
        return {}
    headers = {}
    reset = f"{window.reset_seconds}s"
    if window.rpm is not None:
        headers["x-ratelimit-limit-requests"] = str(window.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, window.rpm - window.requests))
        headers["x-ratelimit-reset-requests"] = reset
    if window.tpm is not None:
        headers["x-ratelimit-limit-tokens"] = str(window.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, window.tpm - window.tokens))
        headers["x-ratelimit-reset-tokens"] = reset
    return headers


def _refusal(refused: store.Refused, max_parallel: int | None) -> GatewayError:
    if refused.which == "budget":
        return QuotaExceeded(
            "This key's budget is spent for this period "
            f"(budget '{refused.budget_id}'): the request's estimated cost does not fit.",
            code="budget_exceeded",
            headers={"x-should-retry": "false"},
        )
    headers = rate_headers(refused.window)
    if refused.which == "parallel":
        message = f"Too many requests in flight for this key: at most {max_parallel} at once."
        return RateLimited(message, headers={**headers, "retry-after": "1"})
    window = refused.window
    assert window is not None
    headers["retry-after"] = str(window.reset_seconds)
    if refused.which == "requests":
        message = (
            f"Rate limit reached for requests per minute (RPM): limit {window.rpm}, "
            f"used {window.requests}. Try again in {window.reset_seconds}s."
        )
    else:
        message = (
            f"Rate limit reached for tokens per minute (TPM): limit {window.tpm}, "
            f"used {window.tokens}. Try again in {window.reset_seconds}s."
        )
    return RateLimited(message, error_type=refused.which, headers=headers)


def settle(
    admission: Admission | None,
    response: dict[str, Any],
    http_status: int = 200,
    error: GatewayError | None = None,
) -> None:
    """Charge, release and write the ledger row (in the caller's write transaction).

    Once that transaction has committed, the caller calls `settled`: until
    then the request is not settled, so a transaction rolled back (or run
    again) settles it again.
    """
    if admission is None or admission.settled:
        return
    usage, estimated = _usage(response, admission)
    cached = usage["input_tokens_details"]["cached_tokens"]
    cost = cost_micros(admission.price, usage["input_tokens"], cached, usage["output_tokens"])
    admission.alerts = []
    admission.used_tokens = usage["input_tokens"] + usage["output_tokens"]
    if admission.held is not None:
        used = admission.used_tokens
        now = time.time()
        periods = {
            budget.id: period_start(budget, now) for budget in admission.principal.limits.budgets
        }
        store.settle(admission.held, admission.principal.key_id, cost, used, periods)
        if admission.webhook is not None and cost:
            admission.alerts = store.claim_alerts(admission.held.budget_ids, alerts.thresholds)
    principal = admission.principal
    status = "client_disconnected" if admission.disconnected else response.get("status")
    failure = error.to_dict() if error is not None else (response.get("error") or {})
    ledger.record(
        {
            "id": new_id("led"),
            "created_at": admission.started,
            "completed_at": int(time.time()),
            "tenant_id": principal.tenant_id,
            "key_id": principal.key_id,
            "key_name": principal.key_name or "",
            "project_id": principal.project_id,
            "user_id": principal.user_id,
            "model": admission.model,
            "endpoint": ENDPOINT,
            "response_id": response.get("id"),
            "status": status if status in LEDGER_STATUSES else "failed",
            "http_status": error.status if error is not None else http_status,
            "input_tokens": usage["input_tokens"],
            "cached_input_tokens": cached,
            "output_tokens": usage["output_tokens"],
            "reasoning_tokens": usage["output_tokens_details"]["reasoning_tokens"],
            "reserved_micros": admission.reserved,
            "cost_micros": cost,
            "price_version": admission.price.version if admission.price else None,
            "stream": admission.stream,
            "estimated": estimated,
            "error_code": failure.get("code") or failure.get("type"),
        }
    )


LEDGER_STATUSES = ("completed", "incomplete", "failed", "cancelled", "client_disconnected")


def settle_alone(
    admission: Admission | None, response: dict[str, Any], error: GatewayError | None
) -> None:
    """Settle a request that ends without storing anything (refused upstream, say)."""
    if admission is None or admission.settled:
        return
    status = 500 if error is None else error.status  # None: the gateway's own failure
    try:
        write_transaction(lambda: settle(admission, response, status, error), shared=True)
    except GatewayError as exc:  # the client gets the first error; the sweep frees the hold
        log.error("could not settle request of key %s: %s", admission.principal.key_id, exc)
        return
    settled(admission)


def settled(admission: Admission | None) -> None:
    """The transaction that settled the request committed: send the alerts it claimed."""
    if admission is None or admission.settled:
        return
    admission.settled = True
    _give_back_counted(admission, admission.used_tokens)
    send_alerts(admission)


def _usage(response: dict[str, Any], admission: Admission) -> tuple[dict[str, Any], bool]:
    """The response's usage, or, when the backend reported none, one counted from its output."""
    usage = response.get("usage") or {}
    if usage.get("total_tokens"):
        return usage, False
    output_tokens = -(-len(_text_of(response.get("output") or [])) // CHARS_PER_TOKEN)
    # Nothing produced: nothing to bill (a refusal before the first token).
    input_tokens = admission.input_estimate if output_tokens else 0
    counted = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }
    return counted, bool(output_tokens)


def _text_of(output: list[dict[str, Any]]) -> str:
    """The text an output holds: message parts, reasoning, tool call arguments."""
    parts = []
    for item in output:
        for part in item.get("content") or ():
            parts.append(part.get("text") or part.get("refusal") or "")
        for part in item.get("summary") or ():
            parts.append(part.get("text") or "")
        parts.append(item.get("arguments") or item.get("input") or "")
    return "".join(parts)


def release_expired(now: float | None = None) -> int:
    """Release what requests that never settled still hold; forget old minutes (the sweep)."""
    now = time.time() if now is None else now
    released = 0
    while expired := store.expired_reservations(now):
        for reservation_id in expired:
            released += write_transaction(lambda rid=reservation_id: store.release_expired(rid))
        time.sleep(0)  # a cooperative yield under gevent
    write_transaction(lambda: store.forget_windows(now))
    return released


def send_alerts(admission: Admission | None) -> None:
    """Send the budget alerts a committed settlement claimed."""
    if admission is not None and admission.alerts and admission.webhook is not None:
        admission.webhook.send(admission.alerts)
        admission.alerts = []
