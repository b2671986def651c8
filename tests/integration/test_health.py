"""/health and /ready as monitors and load balancers read them.

/health answers in the shape the deployment guides monitor
(`status: healthy`, the first backend's `circuit_breaker` at the top, every
backend's below; 503 `unhealthy` when none is usable). /ready (and
`/health?ready=1`) also writes to the store: while the database cannot be
written (locked past the probe's wait, read-only) it answers 503, and
/health stays 200 because the gateway itself still serves.
"""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from tests.integration.helpers import store_path

BREAKER_FIELDS = {"enabled", "is_open", "consecutive_failures"}


def test_health_has_the_guides_shape_with_every_backend_below(make_app, backend):
    app = make_app(
        backends=[
            {"name": "first", "base_url": backend.base_url, "models": ["a"]},
            {"name": "second", "base_url": backend.base_url},
        ]
    )
    app.extensions["backends"].all[1].breaker.record_failure()
    reply = app.test_client().get("/health")
    assert reply.status_code == 200
    body = reply.get_json()
    assert body["status"] == "healthy"
    assert set(body["circuit_breaker"]) == BREAKER_FIELDS
    assert body["circuit_breaker"] == {"enabled": True, "is_open": False, "consecutive_failures": 0}
    assert [b["name"] for b in body["backends"]] == ["first", "second"]
    assert body["backends"][1]["circuit_breaker"]["consecutive_failures"] == 1
    assert "store" not in body


@pytest.mark.parametrize("path", ["/ready", "/health?ready=1", "/health?ready=true"])
def test_ready_writes_to_the_store(make_app, path):
    reply = make_app().test_client().get(path)
    assert reply.status_code == 200
    assert reply.get_json()["store"] == {"writable": True, "error": None}
    assert reply.get_json()["status"] == "healthy"


def test_not_ready_while_the_database_stays_locked(make_app):
    app = make_app()
    client = app.test_client()
    holder = sqlite3.connect(store_path(app), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        reply = client.get("/ready")
        assert reply.status_code == 503
        body = reply.get_json()
        assert body["status"] == "unhealthy"
        assert body["store"]["writable"] is False
        assert "locked" in body["store"]["error"]
        assert client.get("/health").status_code == 200  # alive: only unready
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert client.get("/ready").status_code == 200


def test_not_ready_on_a_read_only_database(make_app, fresh_postgres):
    make_app(**fresh_postgres)  # migrated while writable
    name = fresh_postgres["store_dsn"].rsplit("/", 1)[1]
    with psycopg.connect(fresh_postgres["store_dsn"], autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    client = make_app(**fresh_postgres, migrate_on_start=False).test_client()
    reply = client.get("/ready")
    assert reply.status_code == 503
    assert "read-only" in reply.get_json()["store"]["error"]
    assert client.get("/health").status_code == 200


def test_bad_ready_flag_is_refused(client):
    reply = client.get("/health?ready=maybe")
    assert reply.status_code == 400
    assert reply.get_json()["error"]["param"] == "ready"
