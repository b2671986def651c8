"""Schema migrations (app/store/migrations/), on SQLite and on PostgreSQL.

The upgrade test starts from stores the first release made and filled
(tests/fixtures/first_release/: its SQLite file and a pg_dump of its
PostgreSQL database, with what that code answered), upgrades them with this
code, and reads every response, input item list, conversation and event
stream back unchanged; continuing the chain and the conversation, and
opening sealed reasoning, sends the backend what the first release sent.
Migrating a fresh database must end at the models' schema; concurrent
`gateway migrate` runs apply each step once; a held lock makes them wait; a
failing step leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from openai.types.responses import Response

from app.store import db, migrations, open_database
from app.store.models import MODELS
from app.store.writes import write_transaction
from tests import fakebackend as fb
from tests.integration.helpers import WEATHER_TOOL, sse_events

ROOT = Path(__file__).resolve().parents[2]
FIRST_RELEASE = ROOT / "tests" / "fixtures" / "first_release"
EXPECTED = json.loads((FIRST_RELEASE / "expected.json").read_text())
CONCURRENT_RUNS = 4
WAIT_TIMEOUT = 60


def load_first_release(settings: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Put the first release's filled store where `settings` point; return what it answered."""
    if settings["store_type"] == "postgres":
        with psycopg.connect(settings["store_dsn"], autocommit=True) as connection:
            connection.execute((FIRST_RELEASE / "postgres.sql").read_text())
        return EXPECTED["postgres"]
    shutil.copy(FIRST_RELEASE / "responses.db", settings["store_dsn"])
    return EXPECTED["sqlite"]


def gateway_command(settings: dict[str, Any], *args: str, **options: Any) -> Any:
    """Run `python -m app ARGS` on the store of `settings`."""
    environ = {
        **os.environ,
        "SESSION_STORE_TYPE": settings["store_type"],
        "SESSION_STORE_DSN": settings["store_dsn"],
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "app", *args]
    return subprocess.Popen(command, cwd=ROOT, env=environ, text=True, **options)


def finished(process: subprocess.Popen) -> tuple[int, str]:
    out, err = process.communicate(timeout=WAIT_TIMEOUT)
    return process.returncode, (out or "") + (err or "")


def bind(settings: dict[str, Any]) -> None:
    """Bind the store's `db` to `settings`' database, as `gateway` commands do."""
    database, _ = open_database(_settings(settings))
    db.initialize(database)


def _settings(overrides: dict[str, Any]) -> Any:
    from app.config import load_settings

    return load_settings(overrides, environ={})


def recorded_versions() -> list[int]:
    with db.connection_context():
        return sorted(migrations.applied_versions())


def schema() -> dict[str, Any]:
    """Every table's columns and indexes, as the database reports them."""
    with db.connection_context():
        database = db.obj
        return {
            table: {
                "columns": sorted(
                    (c.name, c.data_type.lower(), c.null, c.primary_key)
                    for c in database.get_columns(table)
                ),
                "indexes": sorted(
                    (i.name, tuple(i.columns), i.unique) for i in database.get_indexes(table)
                ),
            }
            for table in database.get_tables()
            if table != migrations.VERSION_TABLE
        }


def test_first_release_store_upgrades_and_reads_back(fresh_store, tmp_path, make_app, backend):
    expected = load_first_release(fresh_store, tmp_path)
    client = make_app(**fresh_store).test_client()
    assert recorded_versions() == [m.number for m in migrations.MIGRATIONS]
    for response_id, body in expected["responses"].items():
        stored = client.get(f"/v1/responses/{response_id}").get_json()
        assert stored == body
        Response.model_validate(stored)
        items = client.get(f"/v1/responses/{response_id}/input_items?order=asc&limit=100")
        assert items.get_json() == expected["input_items"][response_id]
    conversation = expected["conversation"]["object"]
    assert client.get(f"/v1/conversations/{conversation['id']}").get_json() == conversation
    items = client.get(f"/v1/conversations/{conversation['id']}/items?order=asc&limit=100")
    assert items.get_json() == expected["conversation"]["items"]
    for response_id, events in expected["events"].items():
        replay = client.get(f"/v1/responses/{response_id}?stream=true")
        assert sse_events(replay.get_data(as_text=True).splitlines()) == events

    def sent(**body: Any) -> list[dict[str, Any]]:
        backend.enqueue(fb.text("Continued."))
        reply = client.post("/v1/responses", json={"model": "fake-model", **body})
        assert reply.status_code == 200, reply.get_json()
        return backend.chat_requests()[-1]["messages"]

    chain = sent(input="Go on.", tools=[WEATHER_TOOL], previous_response_id=expected["chain_end"])
    assert chain == expected["sent"]["chain"]
    continued = sent(input="Go on.", conversation=conversation["id"])
    after = [{"role": "assistant", "content": "Continued."}, {"role": "user", "content": "Go on."}]
    assert continued == expected["sent"]["conversation"] + after
    more = {"role": "user", "content": "More."}
    opened = sent(store=False, input=[expected["sent"]["sealed_item"], more])
    assert opened == expected["sent"]["sealed"]


def test_a_fresh_store_migrates_to_the_models_schema(fresh_store):
    bind(fresh_store)
    assert [m.number for m in migrations.migrate()] == [m.number for m in migrations.MIGRATIONS]
    migrated = schema()
    with db.connection_context():
        db.drop_tables(MODELS)
        db.create_tables(MODELS)
    assert migrated == schema()
    assert migrations.migrate() == []  # nothing left to do


def test_concurrent_migrate_commands_apply_each_step_once(fresh_store):
    runs = [
        gateway_command(fresh_store, "migrate", stdout=subprocess.PIPE)
        for _ in range(CONCURRENT_RUNS)
    ]
    outputs = [finished(run) for run in runs]
    assert [status for status, _ in outputs] == [0] * CONCURRENT_RUNS, outputs
    applied = [line for _, out in outputs for line in out.splitlines() if line.startswith("appl")]
    assert sorted(applied) == sorted(f"applied: {m.number} {m.name}" for m in migrations.MIGRATIONS)
    bind(fresh_store)
    assert recorded_versions() == [m.number for m in migrations.MIGRATIONS]


def hold_migration_lock(settings: dict[str, Any]) -> Any:
    """Take the lock migrations run under, from outside; return its connection."""
    if settings["store_type"] == "postgres":
        connection = psycopg.connect(settings["store_dsn"], autocommit=True)
        connection.execute("SELECT pg_advisory_lock(%s)", (migrations.ADVISORY_LOCK_KEY,))
        return connection
    connection = sqlite3.connect(settings["store_dsn"], isolation_level=None)
    connection.execute("PRAGMA journal_mode = wal")  # as every gateway's connection sets it
    connection.execute("BEGIN IMMEDIATE")
    return connection


def release_migration_lock(settings: dict[str, Any], connection: Any) -> None:
    if settings["store_type"] == "postgres":
        connection.execute("SELECT pg_advisory_unlock(%s)", (migrations.ADVISORY_LOCK_KEY,))
    else:
        connection.execute("ROLLBACK")
    connection.close()


def waiting_on_the_lock(settings: dict[str, Any], run: subprocess.Popen) -> bool:
    """Whether `run` has reached the migration lock and waits for it."""
    if settings["store_type"] == "postgres":
        with psycopg.connect(settings["store_dsn"], autocommit=True) as connection:
            waiting = connection.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()[0]
        return waiting == 1
    # SQLite has no lock table: the command says it is about to apply, then waits.
    return run.stdout.readline().startswith("pending:")


def test_migrate_waits_while_another_gateway_holds_the_lock(fresh_store):
    held = hold_migration_lock(fresh_store)
    try:
        run = gateway_command(fresh_store, "migrate", stdout=subprocess.PIPE)
        deadline = time.monotonic() + WAIT_TIMEOUT
        while not waiting_on_the_lock(fresh_store, run):
            assert run.poll() is None, finished(run)
            assert time.monotonic() < deadline, "migrate never reached the lock"
        assert run.poll() is None
        bind(fresh_store)
        assert recorded_versions() == []
    finally:
        release_migration_lock(fresh_store, held)
    status, out = finished(run)
    assert status == 0, out
    assert recorded_versions() == [m.number for m in migrations.MIGRATIONS]


def test_migrate_check_tells_what_is_pending(fresh_store, tmp_path):
    load_first_release(fresh_store, tmp_path)
    status, out = finished(
        gateway_command(fresh_store, "migrate", "--check", stdout=subprocess.PIPE)
    )
    assert status == 1
    assert [line for line in out.splitlines() if line.startswith("pending")] == [
        f"pending: {m.number} {m.name}" for m in migrations.MIGRATIONS
    ]
    assert finished(gateway_command(fresh_store, "migrate", stdout=subprocess.PIPE))[0] == 0
    status, out = finished(
        gateway_command(fresh_store, "migrate", "--check", stdout=subprocess.PIPE)
    )
    assert (status, "pending" in out) == (0, False)


def test_start_refuses_pending_migrations_it_may_not_apply(fresh_store, tmp_path, make_app):
    load_first_release(fresh_store, tmp_path)
    with pytest.raises(migrations.SchemaError, match="run `gateway migrate`"):
        make_app(migrate_on_start=False, **fresh_store)
    assert recorded_versions() == []


def test_a_schema_newer_than_this_release_is_refused(fresh_store, make_app):
    bind(fresh_store)
    migrations.migrate()
    newer = migrations.LATEST + 1
    with db.connection_context():
        db.execute_sql(
            f"INSERT INTO schema_version VALUES ({db.param}, 'from the future', 0)", (newer,)
        )
    with pytest.raises(migrations.SchemaError, match=f"at version {newer}, newer"):
        make_app(**fresh_store)
    status, out = finished(gateway_command(fresh_store, "migrate", stderr=subprocess.PIPE))
    assert status == 2 and f"at version {newer}" in out


def test_a_failing_step_leaves_nothing_behind(fresh_store, monkeypatch):
    bind(fresh_store)
    migrations.migrate()

    def half_done(database: Any) -> None:
        database.execute_sql("CREATE TABLE half_done (id INTEGER)")
        database.execute_sql("ALTER TABLE responses ADD COLUMN half_done INTEGER")
        raise RuntimeError("step failed midway")

    failing = migrations.Migration(migrations.LATEST + 1, "fails", half_done)
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, failing))
    monkeypatch.setattr(migrations, "LATEST", failing.number)
    before = schema()
    with pytest.raises(RuntimeError, match="midway"):
        migrations.migrate()
    assert schema() == before
    assert recorded_versions() == [m.number for m in migrations.MIGRATIONS[:-1]]
    assert write_transaction(lambda: True)  # the lock was let go
