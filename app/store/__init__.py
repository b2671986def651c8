"""Persistent state: the database handle, its models, and `init_app`.

`db` is a proxy bound at start-up from the settings' DSN: a SQLite file
(default, WAL mode), PostgreSQL (psycopg 3, which goes green under gevent),
or an in-process shared-cache SQLite database for the one-worker memory
store. The schema is brought up to date by the migrations at start (or
refused, if the operator runs them by hand). Connections are opened on
demand and closed after each request.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import uuid
from typing import Any

from peewee import SqliteDatabase
from playhouse.pool import PooledSqliteDatabase
from playhouse.postgres_ext import PooledPsycopg3Database

from app.config import Settings
from app.store import migrations, retention
from app.store.models import db

log = logging.getLogger(__name__)

SQLITE_PRAGMAS = {
    # First: the pragmas after it then wait for a lock instead of failing at once
    # (switching a new file to WAL takes one, while other workers start too).
    "busy_timeout": 5000,
    "journal_mode": "wal",
    "synchronous": "normal",
}
# Set on a new file only (see `_new_sqlite_file`): on an existing one, setting
# it takes the write lock, and every connection opened would wait for writers.
NEW_FILE_PRAGMAS = ("PRAGMA auto_vacuum = incremental", "PRAGMA journal_mode = wal")
POOL_SIZE = 64
# A request waits this long for a free pooled connection rather than failing
# at once: writers waiting for SQLite's lock (up to WRITE_DEADLINE, 5 s) each
# hold one, and a green PostgreSQL query holds one while it waits too.
POOL_WAIT_SECONDS = 10
STALE_SECONDS = 300

__all__ = ["bind", "db", "init_app", "open_database", "prepare_schema"]


def open_database(settings: Settings) -> tuple[Any, Any]:
    """Return the database for the configured store, and an object to keep alive."""
    store = settings.store
    if store.type == "memory":
        uri = f"file:gateway-{uuid.uuid4().hex}?mode=memory&cache=shared"
        keeper = sqlite3.connect(uri, uri=True, check_same_thread=False)
        return SqliteDatabase(uri, uri=True, pragmas={"busy_timeout": 5000}), keeper
    if store.type == "postgres":
        arguments = store.connect_args()  # the DSN read as peewee's db_url reads one
        database = PooledPsycopg3Database(
            arguments.pop("database"),
            max_connections=POOL_SIZE,
            stale_timeout=STALE_SECONDS,
            timeout=POOL_WAIT_SECONDS,
            **arguments,
        )
        return database, None
    path = store.sqlite_path
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    _new_sqlite_file(path)
    database = PooledSqliteDatabase(
        path,
        pragmas=SQLITE_PRAGMAS,
        max_connections=POOL_SIZE,
        stale_timeout=STALE_SECONDS,
        timeout=POOL_WAIT_SECONDS,
        check_same_thread=False,  # pooled: handed between threads, used by one at a time
    )
    return database, None


def _new_sqlite_file(path: str) -> None:
    """Make a missing SQLite file with incremental vacuum, so sweeps can give pages back.

    The mode can be chosen only while the file holds nothing yet (an older
    file keeps its own until `gateway sweep --vacuum`). Workers starting at
    once may all try: whoever comes second finds it made, or waits briefly.
    """
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return
    with contextlib.suppress(sqlite3.OperationalError):
        connection = sqlite3.connect(path, timeout=5, isolation_level=None)
        try:
            for pragma in NEW_FILE_PRAGMAS:
                connection.execute(pragma)
        finally:
            connection.close()


def bind(settings: Settings) -> Any:
    """Bind `db` to the configured store, with its retention; return what to keep alive."""
    database, keeper = open_database(settings)
    db.initialize(database)
    retention.configure(retention.Policy(settings.store.ttl, settings.store.events_ttl))
    return keeper


def init_app(app: Any, settings: Settings) -> None:
    """Bind `db` to the configured store, bring its schema up to date, close connections."""
    app.extensions["store_keeper"] = bind(settings)
    prepare_schema(settings.store.migrate_on_start)

    @app.teardown_appcontext
    def close_connection(_exc: BaseException | None) -> None:
        if not db.is_closed():
            db.close()


def prepare_schema(migrate: bool) -> None:
    """Apply pending migrations, or refuse to serve an out-of-date schema."""
    if migrate:
        for migration in migrations.migrate():
            log.info("store schema: applied migration %d (%s)", migration.number, migration.name)
        return
    with db.connection_context():
        pending = migrations.pending()
    if pending:
        names = ", ".join(f"{m.number} ({m.name})" for m in pending)
        raise migrations.SchemaError(
            f"the store's schema needs migrations {names}: run `gateway migrate` "
            "(GATEWAY_MIGRATE_ON_START is off)"
        )
