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

Writes that the request path makes on every request of a virtual key (its
admission, its settlement, the stored response) are *shared*: a writer
first lets the other greenlets of its worker run, and every shared write
they are ready to make by then goes into its transaction. One commit then
carries many requests: the rows every request touches (a budget, a key's
minute) are written to the WAL once, not once a request. Only the leading
writer's greenlet runs SQL; the others wait for their outcome. Running in
another's transaction, a shared write must be all or nothing: it returns
having written everything, or raises `Refusal` having written nothing (a
limit that says no first undoes what it took); any other failure rolls
the transaction back, and every write in it fails with the store's error.
Writes that read the request's context (the admin plane's, with their
audit rows) are never shared.

`insert_rows` sends prepared-once SQL: building an INSERT through peewee's
query compiler costs more than SQLite takes to run it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from peewee import InternalError, Model, OperationalError, SqliteDatabase

from app.errors import StoreError, StoreFull
from app.observe import SHARED_WRITES, STORE_WRITES_WAITING
from app.store.models import db

WRITE_DEADLINE = 5.0
FIRST_PAUSE = 0.001
LONGEST_PAUSE = 0.05
READ_BUSY_TIMEOUT_MS = 5000
ROWS_PER_INSERT = 100  # well under SQLite's limit of bound parameters
# How SQLite and PostgreSQL say the disk is full (53100: PostgreSQL's disk_full).
FULL_SIGNS = ("database or disk is full", "no space left on device", "53100")
MAX_DETAIL = 200
MAX_SHARED = 64  # writes in one shared transaction

T = TypeVar("T")


def writes(function: Callable[..., T]) -> Callable[..., T]:
    """Run `function` in one write transaction, retried while the database is locked."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> T:
        return write_transaction(lambda: function(*args, **kwargs))

    return run


def write_transaction(
    body: Callable[[], T], wait: float = WRITE_DEADLINE, shared: bool = False
) -> T:
    """Run `body` holding the write lock, waiting for it up to `wait` seconds.

    `shared`: `body` touches nothing but the database and what it closes
    over, so it may run in another request's transaction (on SQLite).
    """
    if db.in_transaction():
        return body()
    try:
        if not isinstance(db.obj, SqliteDatabase):
            with db.atomic():
                return body()
        if shared:
            return _shared_write(body, wait)
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


class Refusal(Exception):
    """A shared write said no, and wrote nothing: the writes beside it commit."""


@dataclass(eq=False)
class _Shared:
    """A shared write: its body, its deadline, and its outcome once its transaction ended."""

    body: Callable[[], Any]
    deadline: float
    done: threading.Event = field(default_factory=threading.Event)
    leads: bool = False  # woken to run the writes still waiting, its own among them
    cancelled: bool = False  # its caller stopped waiting after a leader took it
    finished: bool = False
    result: Any = None
    error: BaseException | None = None

    def end(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.finished = result, error, True
        self.done.set()

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class _Writers:
    """The shared writes of this process waiting for a transaction, and whether one leads."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.waiting: list[_Shared] = []
        self.leading = False


_writers = _Writers()


def _shared_write(body: Callable[[], T], wait: float) -> T:
    """Run `body` in the transaction of the write that leads now, or lead one."""
    mine = _Shared(body, time.monotonic() + wait)
    with _writers.mutex:
        _writers.waiting.append(mine)
        leads = not _writers.leading
        _writers.leading = True
    if not leads:
        STORE_WRITES_WAITING.inc()  # it waits for the lock, behind the leader
        try:
            mine.done.wait()
        except BaseException:  # stopped while it waited (a greenlet killed)
            _abandon(mine)
            raise
        finally:
            STORE_WRITES_WAITING.dec()
        if mine.finished:
            return mine.outcome()
    _lead(mine, wait)
    return mine.outcome()


def _abandon(mine: _Shared) -> None:
    """A waiting write whose caller is gone: out of the queue, and never left leading."""
    with _writers.mutex:
        if mine not in _writers.waiting:  # a leader has it: it will be skipped
            mine.cancelled = True
            return
        _writers.waiting.remove(mine)
        if mine.leads:  # woken to lead, and it will not
            _hand_over()


def _hand_over() -> None:
    """Wake the first waiting write to lead, or leave no one leading (under the mutex)."""
    if _writers.waiting:
        following = _writers.waiting[0]
        following.leads = True
        following.done.set()
    else:
        _writers.leading = False


def _lead(mine: _Shared, wait: float) -> None:
    """Take the lock, then every write waiting by then (this one first), in one transaction."""
    taken: list[_Shared] = []
    outcomes: list[tuple[Any, BaseException | None]] = []
    broken: list[Exception] = []  # the write whose failure rolled the transaction back

    def run_taken() -> None:
        if not taken:  # (a transaction retried for its lock runs the same writes again)
            with _writers.mutex:
                taken.extend(_writers.waiting[:MAX_SHARED])
                del _writers.waiting[:MAX_SHARED]
        outcomes.clear()
        broken.clear()
        for write in taken:
            if write.cancelled:  # its caller is gone: nothing to write for it
                outcomes.append((None, StoreError("The store was not written: cancelled")))
                continue
            try:
                outcomes.append((write.body(), None))
            except Refusal as exc:  # it wrote nothing: the others go on
                outcomes.append((None, exc))
            except Exception as exc:  # what it wrote is unknown: the whole transaction rolls back
                outcomes.append((None, exc))
                broken.append(exc)
                raise

    try:
        time.sleep(0)  # a cooperative yield: greenlets ready to write join this transaction
        _sqlite_write(run_taken, max(0.0, mine.deadline - time.monotonic()))
    except Exception as exc:
        if taken:  # the transaction failed: every write in it did
            failed = broken[0] if broken else None
            for index, write in enumerate(taken):
                own = outcomes[index][1] if index < len(outcomes) else None
                write.end(error=own or _failed_beside(failed, exc, wait))
        else:  # the lock never came: the writes out of time fail, the others wait on
            _fail_waiting(exc, wait, mine)
    else:
        SHARED_WRITES.observe(len(taken))
        for write, outcome in zip(taken, outcomes, strict=True):
            write.end(*outcome)
    finally:
        for write in taken:
            if not write.finished:  # the leader itself was stopped
                write.end(error=StoreError("The store could not be written: interrupted"))
        with _writers.mutex:
            if mine in _writers.waiting:  # stopped before it took anything: it leaves the queue
                _writers.waiting.remove(mine)
            _hand_over()


def _failed_beside(failed: BaseException | None, exc: Exception, wait: float) -> StoreError:
    """The error of a write whose shared transaction another write's failure rolled back."""
    if failed is None or isinstance(failed, (OperationalError, InternalError)):
        return _store_error(exc, wait)  # the database's own failure: the same for all
    detail = f"{failed.__class__.__name__}: {failed}"[:MAX_DETAIL]
    return StoreError(
        f"The store could not be written: a write sharing its transaction failed ({detail})"
    )


def _fail_waiting(exc: Exception, wait: float, mine: _Shared) -> None:
    """End the waiting writes that the failure to take the lock leaves out of time."""
    late = time.monotonic() + LONGEST_PAUSE
    locked = isinstance(exc, OperationalError) and _locked(exc)
    with _writers.mutex:
        failed = [
            write
            for write in _writers.waiting
            if write is mine or not locked or write.deadline <= late
        ]
        _writers.waiting[:] = [write for write in _writers.waiting if write not in failed]
    for write in failed:
        write.end(error=_store_error(exc, wait))


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
