"""Budgets exact under concurrency, across real processes: gunicorn workers, two gateways.

N clients start at once against a budget that holds ⌊budget / estimate⌋
requests; the backend answers only after a pause, so every admission
happens while the others still hold their reservations. Exactly that many
are answered, the rest get 429 `insufficient_quota`; the ledger has one row
per answered request and the budget's spend is their sum, nothing left
reserved. On SQLite with two workers; on PostgreSQL with two gateway
instances (each its own gunicorn master) on one database, where a key
disabled through one is refused by the other on its very next request.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time

import pytest
import requests

from tests import fakebackend as fb
from tests.e2e.gateway_process import Gateway
from tests.integration.tenancy import ADMIN_TOKEN, AUTH_SECRET

pytestmark = pytest.mark.slow

CLIENTS = 16
FITS = 5
OUTPUT_CAP = 1000  # µUSD each request reserves: 1000 output tokens at 1 µUSD, input free
PRICES = {
    "prices": [
        {
            "model": "fake-model",
            "input_micros_per_million": 0,
            "output_micros_per_million": 1_000_000,
        }
    ]
}
ANSWER_USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
HOLD_SECONDS = 2.0


def admin(gateway: Gateway, method: str, path: str, body: object = None) -> dict:
    response = requests.request(
        method,
        f"{gateway.url}/v1/gateway{path}",
        json=body,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert response.status_code < 300, response.text
    return response.json()


def race(gateways: list[Gateway], backend: fb.FakeBackend) -> tuple[list[int], dict]:
    """Make the budgeted key, send CLIENTS requests at once; return their statuses and the key."""
    first = gateways[0]
    admin(first, "PUT", "/prices", PRICES)
    key = admin(
        first, "POST", "/keys", {"name": "race", "max_budget_usd": (FITS * 1000 + 999) / 1e6}
    )
    for _ in range(FITS):
        backend.enqueue(fb.slow_first_byte(HOLD_SECONDS, fb.text("ok", usage=ANSWER_USAGE)))
    body = {"model": "fake-model", "input": "go", "max_output_tokens": OUTPUT_CAP}
    return at_once(gateways, key["secret"], body, ("type", "insufficient_quota")), key


def at_once(
    gateways: list[Gateway], secret: str, body: dict, refusal: tuple[str, str]
) -> list[int]:
    """CLIENTS requests sent at once, spread over `gateways`; each 429 must be `refusal`
    (an error field and its value). Their statuses."""
    start = threading.Barrier(CLIENTS)
    statuses: list[int] = []

    def client(n: int) -> None:
        start.wait()
        reply = requests.post(
            f"{gateways[n % len(gateways)].url}/v1/responses",
            json=body,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        )
        if reply.status_code == 429:
            assert reply.json()["error"][refusal[0]] == refusal[1]
        statuses.append(reply.status_code)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


def check_books(gateway: Gateway, key: dict, statuses: list[int]) -> None:
    assert sorted(statuses) == [200] * FITS + [429] * (CLIENTS - FITS), statuses
    rows = admin(gateway, "GET", f"/ledger?key_id={key['id']}")["data"]
    assert len(rows) == FITS and all(row["status"] == "completed" for row in rows)
    usage = admin(gateway, "GET", f"/keys/{key['id']}")["usage"]
    assert usage["reserved_usd"] == 0
    assert usage["period_spend_usd"] == pytest.approx(FITS * 3 / 1e6)  # 3 output tokens each


KEYS_ENV = {
    "GATEWAY_AUTH": "keys",
    "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    "GATEWAY_AUTH_SECRET": AUTH_SECRET,
}


def test_two_workers_on_sqlite_admit_exactly_what_fits(start_gateway, backend):
    gateway = start_gateway(workers=2, **KEYS_ENV)
    statuses, key = race([gateway], backend)
    check_books(gateway, key, statuses)


def shared_writes(gateway: Gateway) -> tuple[float, float]:
    """(transactions, writes) of the gateway's shared SQLite writes, from its metrics."""
    exposition = requests.get(f"{gateway.url}/metrics", timeout=5).text
    found = re.findall(r"^gateway_store_shared_writes_(count|sum) (\S+)", exposition, re.M)
    totals = dict(found)
    return float(totals.get("count", 0)), float(totals.get("sum", 0))


def store_writes_waiting(gateway: Gateway) -> float:
    exposition = requests.get(f"{gateway.url}/metrics", timeout=5).text
    found = re.search(r"^gateway_store_writes_waiting (\S+)", exposition, re.M)
    return float(found[1]) if found else 0.0


def test_requests_waiting_for_the_lock_share_one_transaction_per_worker(
    start_gateway, backend, tmp_path
):
    gateway = start_gateway(workers=2, **KEYS_ENV)
    admin(gateway, "PUT", "/prices", PRICES)
    key = admin(gateway, "POST", "/keys", {"name": "shared", "max_budget_usd": 1.0})
    before = shared_writes(gateway)
    lock = sqlite3.connect(tmp_path / "gateway.db", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # another process holds SQLite's write lock
    statuses: list[int] = []

    def client() -> None:
        body = {"model": "fake-model", "input": "go", "max_output_tokens": 10}
        headers = {"Authorization": f"Bearer {key['secret']}"}
        reply = requests.post(f"{gateway.url}/v1/responses", json=body, headers=headers, timeout=30)
        statuses.append(reply.status_code)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while store_writes_waiting(gateway) < CLIENTS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store_writes_waiting(gateway) == CLIENTS  # every admission waits, in two workers
    lock.rollback()
    for thread in threads:
        thread.join(30)
    assert statuses == [200] * CLIENTS
    transactions, writes = (
        after - first for after, first in zip(shared_writes(gateway), before, strict=True)
    )
    assert writes == 2 * CLIENTS  # each request's admission, then its settlement
    # The admissions queued behind the lock: one transaction in each worker carried them.
    assert transactions <= 2 + CLIENTS, (transactions, writes)
    rows = admin(gateway, "GET", f"/ledger?key_id={key['id']}")["data"]
    assert len(rows) == CLIENTS and {row["status"] for row in rows} == {"completed"}


def test_two_gateways_on_one_postgres_admit_exactly_what_fits(
    start_gateway, backend, fresh_postgres, tmp_path
):
    env = {
        **KEYS_ENV,
        "SESSION_STORE_TYPE": "postgres",
        "SESSION_STORE_DSN": fresh_postgres["store_dsn"],
    }
    gateways = [
        start_gateway(workers=1, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / f"metrics-{n}"), **env)
        for n in range(2)
    ]
    statuses, key = race(gateways, backend)
    check_books(gateways[1], key, statuses)
    # A key disabled through one gateway is refused by the other on its next request.
    other = admin(gateways[1], "POST", "/keys", {"name": "other"})
    ask = lambda: requests.get(  # noqa: E731
        f"{gateways[1].url}/v1/models",
        headers={"Authorization": f"Bearer {other['secret']}"},
        timeout=10,
    )
    assert ask().status_code == 200  # now cached by gateways[1]
    admin(gateways[0], "PATCH", f"/keys/{other['id']}", {"status": "disabled"})
    refused = ask()
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "key_disabled"


def test_two_gateways_on_one_redis_share_a_keys_rate_limit(
    start_gateway, backend, fresh_postgres, tmp_path
):
    from app.store.counters import RedisCounters

    redis_url = "redis://127.0.0.1:6379/0"
    if not RedisCounters(redis_url).ping():
        pytest.skip(f"no Redis at {redis_url}")
    env = {
        **KEYS_ENV,
        "SESSION_STORE_TYPE": "postgres",
        "SESSION_STORE_DSN": fresh_postgres["store_dsn"],
        "GATEWAY_REDIS_URL": redis_url,
    }
    gateways = [
        start_gateway(workers=2, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / f"metrics-{n}"), **env)
        for n in range(2)
    ]
    key = admin(gateways[0], "POST", "/keys", {"name": "shared-minute", "rpm_limit": FITS})
    while time.time() % 60 > 50:  # the race stays within one minute
        time.sleep(0.5)
    body = {"model": "fake-model", "input": "go"}
    statuses = at_once(gateways, key["secret"], body, ("code", "rate_limit_exceeded"))
    # One minute of FITS requests for the key, whichever gateway and worker took them.
    assert sorted(statuses) == [200] * FITS + [429] * (CLIENTS - FITS), statuses
    assert len(backend.chat_requests()) == FITS
    rows = admin(gateways[1], "GET", f"/ledger?key_id={key['id']}")["data"]
    assert len(rows) == FITS
