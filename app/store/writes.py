"""Write transactions that wait for SQLite's lock without freezing the worker,
and the one fast insert they use.

A write that fails in the database becomes the gateway's own error here,
once: a full disk a 507 (`StoreFull`), a lock held past the wait or any
other failure a 503 (`StoreError`), each saying what the database said.

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
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from peewee import InternalError, Model, OperationalError, SqliteDatabase

from app.errors import StoreError, StoreFull
from app.observe import STORE_WRITES_WAITING
from app.store.models import db

WRITE_DEADLINE = 5.0
FIRST_PAUSE = 0.001
LONGEST_PAUSE = 0.05
READ_BUSY_TIMEOUT_MS = 5000
ROWS_PER_INSERT = 100  # well under SQLite's limit of bound parameters
# How SQLite and PostgreSQL say the disk is full (53100: PostgreSQL's disk_full).
FULL_SIGNS = ("database or disk is full", "no space left on device", "53100")
MAX_DETAIL = 200

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
    try:
        if not isinstance(db.obj, SqliteDatabase):
            with db.atomic():
                return body()
        return _sqlite_write(body, wait)
    except (OperationalError, InternalError) as exc:  # what the database, not the code, got wrong
        raise _store_error(exc, wait) from exc


def _store_error(exc: Exception, wait: float) -> StoreError:
    # A commit that failed for a full disk is rolled back by SQLite itself; peewee's
    # own rollback then fails, and that error holds the real one as its context.
    chain = list(_chain(exc))
    full = next((e for e in chain if any(s in _said(e) for s in FULL_SIGNS)), None)
    detail = str(full or exc).strip()[:MAX_DETAIL]
    if full is not None:
        return StoreFull(f"The store is full: nothing can be saved until space is freed ({detail})")
    if isinstance(exc, OperationalError) and _locked(exc):
        return StoreError(f"The store is busy: a write waited {wait:g}s for its lock ({detail})")
    return StoreError(f"The store could not be written: {detail}")


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def _said(exc: BaseException) -> str:
    return f"{exc} {getattr(exc, 'sqlstate', '') or ''}".lower()


def _sqlite_write(body: Callable[[], T], wait: float) -> T:
    deadline = time.monotonic() + wait
    pause = FIRST_PAUSE
    waiting = False  # counted in STORE_WRITES_WAITING while it waits for the lock
    try:
        while True:
            try:
                return _immediate(body)
            except OperationalError as exc:
                if not _locked(exc) or time.monotonic() + pause > deadline:
                    raise
            if not waiting:
                waiting = True
                STORE_WRITES_WAITING.inc()
            time.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)
    finally:
        if waiting:
            STORE_WRITES_WAITING.dec()


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
