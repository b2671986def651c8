"""Write transactions that wait for SQLite's lock without freezing the worker,
and the one fast insert they use.

SQLite lets one writer at a time. Its own busy handler waits inside a C
call, and under gevent that stops every greenlet of the worker. So a write
takes the lock up front (`BEGIN IMMEDIATE`) with the busy timeout at zero,
and when another process holds it, sleeps in Python (a cooperative sleep
under gevent) and tries again, for up to `WRITE_DEADLINE` seconds.
PostgreSQL needs none of this: its writes are plain transactions.

`insert_rows` sends prepared-once SQL: building an INSERT through peewee's
query compiler costs more than SQLite takes to run it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from peewee import Model, OperationalError, SqliteDatabase

from app.store.models import db

WRITE_DEADLINE = 5.0
FIRST_PAUSE = 0.001
LONGEST_PAUSE = 0.05
READ_BUSY_TIMEOUT_MS = 5000
ROWS_PER_INSERT = 100  # well under SQLite's limit of bound parameters

T = TypeVar("T")


def writes(function: Callable[..., T]) -> Callable[..., T]:
    """Run `function` in one write transaction, retried while the database is locked."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> T:
        return write_transaction(lambda: function(*args, **kwargs))

    return run


def write_transaction(body: Callable[[], T], wait: float = WRITE_DEADLINE) -> T:
    """Run `body` holding the write lock, waiting for it up to `wait` seconds."""
    if db.in_transaction():
        return body()
    if not isinstance(db.obj, SqliteDatabase):
        with db.atomic():
            return body()
    return _sqlite_write(body, wait)


def _sqlite_write(body: Callable[[], T], wait: float) -> T:
    deadline = time.monotonic() + wait
    pause = FIRST_PAUSE
    while True:
        try:
            return _immediate(body)
        except OperationalError as exc:
            if not _locked(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, LONGEST_PAUSE)


def _immediate(body: Callable[[], T]) -> T:
    db.execute_sql("PRAGMA busy_timeout = 0")
    try:
        transaction = db.atomic("IMMEDIATE")
        transaction.__enter__()
    finally:
        db.execute_sql(f"PRAGMA busy_timeout = {READ_BUSY_TIMEOUT_MS}")
    try:
        result = body()
    except BaseException as exc:
        transaction.__exit__(type(exc), exc, exc.__traceback__)
        raise
    transaction.__exit__(None, None, None)
    return result


def _locked(exc: OperationalError) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def insert_rows(model: type[Model], rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys, in order) into `model`'s table."""
    if not rows:
        return
    columns = tuple(rows[0])
    for start in range(0, len(rows), ROWS_PER_INSERT):
        batch = rows[start : start + ROWS_PER_INSERT]
        sql = _insert_sql(model._meta.table_name, columns, len(batch), db.param)
        db.execute_sql(sql, [row[column] for row in batch for column in columns])


@functools.lru_cache(maxsize=256)
def _insert_sql(table: str, columns: tuple[str, ...], count: int, param: str) -> str:
    names = ", ".join(f'"{column}"' for column in columns)
    values = "(" + ", ".join([param] * len(columns)) + ")"
    return f'INSERT INTO "{table}" ({names}) VALUES ' + ", ".join([values] * count)
