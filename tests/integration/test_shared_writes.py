"""Shared writes on SQLite: the request path's writes waiting together commit together.

Another connection holds SQLite's write lock while writers queue behind
it in a known order (each counted in `gateway_store_writes_waiting`);
once it lets go, one transaction carries them all. A refusal (`Refusal`)
leaves the writes beside it committed; any other failure rolls the whole
transaction back and fails every write in it with the store's error, and
the next writes go on. A limit that refuses inside such a transaction
gives back what it took before refusing.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from prometheus_client import REGISTRY

from app.errors import StoreError
from app.store import writes
from app.store.models import db
from app.store.writes import Refusal, write_transaction
from tests.integration.helpers import MODEL, assert_openai_error
from tests.integration.ops_helpers import wait_until
from tests.integration.tenancy import KEYS_MODE, AdminClient, key_sdk

PROBE = "CREATE TABLE shared_probe (n INTEGER PRIMARY KEY)"


@pytest.fixture
def sqlite_app(make_app, tmp_path):
    app = make_app(store_type="sqlite", store_dsn=str(tmp_path / "store.db"))
    with db.connection_context():
        db.execute_sql(PROBE)
    return app, str(tmp_path / "store.db")


def waiting() -> int:
    return int(REGISTRY.get_sample_value("gateway_store_writes_waiting") or 0)


def probed() -> list[int]:
    with db.connection_context():
        return [row[0] for row in db.execute_sql("SELECT n FROM shared_probe ORDER BY n")]


def insert(n: int) -> Callable[[], int]:
    def body() -> int:
        db.execute_sql(f"INSERT INTO shared_probe (n) VALUES ({db.param})", (n,))
        return n

    return body


class Queued:
    """Shared writes started one after another behind a held lock, then let through."""

    def __init__(self, path: str) -> None:
        self.lock = sqlite3.connect(path, isolation_level=None)
        self.lock.execute("BEGIN IMMEDIATE")
        self.outcomes: dict[int, Any] = {}
        self.threads: list[threading.Thread] = []

    def add(self, index: int, body: Callable[[], Any]) -> None:
        def run() -> None:
            with db.connection_context():
                try:
                    self.outcomes[index] = write_transaction(body, shared=True)
                except Exception as exc:
                    self.outcomes[index] = exc

        before = waiting()
        thread = threading.Thread(target=run)
        thread.start()
        self.threads.append(thread)
        wait_until(lambda: waiting() > before, f"write {index} to wait for the lock")

    def release(self) -> dict[int, Any]:
        self.lock.rollback()
        self.lock.close()
        for thread in self.threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in self.threads)
        return self.outcomes


@pytest.fixture
def commits(monkeypatch) -> Iterator[list[int]]:
    """How many write transactions committed (a spy on the one place that commits them)."""
    committed: list[int] = []
    immediate = writes._immediate

    def counted(body: Callable[[], Any]) -> Any:
        result = immediate(body)
        committed.append(1)
        return result

    monkeypatch.setattr(writes, "_immediate", counted)
    yield committed


def test_writes_waiting_together_commit_in_one_transaction(sqlite_app, commits):
    _, path = sqlite_app
    queued = Queued(path)
    for n in range(20):
        queued.add(n, insert(n))
    assert queued.release() == {n: n for n in range(20)}
    assert probed() == list(range(20))
    assert len(commits) == 1
    assert waiting() == 0


def between_two_inserts(path: str, middle: Callable[[], Any]) -> dict[int, Any]:
    """The outcomes of inserting 1, running `middle`, inserting 3: queued in that order."""
    queued = Queued(path)
    queued.add(1, insert(1))
    queued.add(2, middle)
    queued.add(3, insert(3))
    return queued.release()


def test_a_refusal_leaves_the_writes_beside_it_committed(sqlite_app, commits):
    _, path = sqlite_app

    def refused() -> None:
        raise Refusal("no")

    outcomes = between_two_inserts(path, refused)
    assert (outcomes[1], outcomes[3]) == (1, 3)
    assert isinstance(outcomes[2], Refusal)
    assert probed() == [1, 3]
    assert len(commits) == 1


def test_a_failing_write_fails_its_whole_transaction_and_the_next_goes_on(sqlite_app):
    _, path = sqlite_app

    def half_then_fails() -> None:
        insert(2)()
        raise ValueError("a bug after a write")

    outcomes = between_two_inserts(path, half_then_fails)
    assert isinstance(outcomes[2], ValueError)
    for n in (1, 3):  # what it wrote, and what they wrote, is rolled back with it
        assert isinstance(outcomes[n], StoreError)
        assert "ValueError" in outcomes[n].message
    assert probed() == []
    with db.connection_context():
        assert write_transaction(insert(4), shared=True) == 4
    assert probed() == [4]


def test_a_write_out_of_time_fails_alone_and_the_next_one_leads(sqlite_app):
    _, path = sqlite_app
    queued = Queued(path)
    slow = threading.Thread(
        target=lambda: queued.outcomes.setdefault("first", _short_write(insert(1)))
    )
    slow.start()
    wait_until(lambda: waiting() >= 1, "the first write to wait for the lock")
    queued.add(2, insert(2))
    slow.join(timeout=10)  # its own 0.3 s pass while the lock is held
    assert isinstance(queued.outcomes["first"], StoreError)
    assert "busy" in queued.outcomes["first"].message
    assert queued.release()[2] == 2  # the one behind it had time left, and led once let through
    assert probed() == [2]


def _short_write(body: Callable[[], Any]) -> Any:
    with db.connection_context():
        try:
            return write_transaction(body, wait=0.3, shared=True)
        except StoreError as exc:
            return exc


def test_a_refused_admission_gives_back_what_it_took(make_app, tmp_path, backend):
    app = make_app(**KEYS_MODE, store_type="sqlite", store_dsn=str(tmp_path / "keys.db"))
    admin = AdminClient(app)
    price = {"model": MODEL, "input_micros_per_million": 10**12, "output_micros_per_million": 1}
    admin.ok("PUT", "/prices", {"prices": [price]})
    key = admin.key(
        "tight", rpm_limit=100, tpm_limit=10**6, max_parallel_requests=5, max_budget_usd=0.5
    )
    sdk = key_sdk(app, key)
    # The window and the slot are taken first; the budget then refuses the estimate.
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.responses.create(model=MODEL, input="hello")
    assert assert_openai_error(caught.value, 429)["code"] == "budget_exceeded"
    assert backend.requests == []
    with db.connection_context():
        window = db.execute_sql("SELECT requests, tokens FROM rate_windows").fetchall()
        inflight = db.execute_sql("SELECT inflight FROM key_inflight").fetchall()
        budget = db.execute_sql("SELECT spent_micros, reserved_micros FROM budgets").fetchall()
        reservations = db.execute_sql("SELECT count(*) FROM reservations").fetchone()[0]
    assert window == [(0, 0)] and inflight == [(0,)]
    assert budget == [(0, 0)] and reservations == 0


GREENLETS = r"""
import json, sqlite3, sys
from gevent import monkey
monkey.patch_all()
import gevent
sys.path.insert(0, sys.argv[2])
from app import create_app
from app.store.models import db
from app.store.writes import write_transaction

path = sys.argv[1]
create_app({"store_dsn": path, "backends": [{"base_url": "http://127.0.0.1:9/v1"}]})
with db.connection_context():
    db.execute_sql("CREATE TABLE shared_probe (n INTEGER PRIMARY KEY)")

def insert(n):
    def body():
        db.execute_sql("INSERT INTO shared_probe (n) VALUES (?)", (n,))
        return n
    return body

def write(n):
    with db.connection_context():
        return write_transaction(insert(n), shared=True)

lock = sqlite3.connect(path, isolation_level=None)
lock.execute("BEGIN IMMEDIATE")
leader = gevent.spawn(write, 1)
gevent.sleep(0.05)  # it waits for the lock, leading
waiter = gevent.spawn(write, 2)
behind = gevent.spawn(write, 3)
gevent.sleep(0.05)  # both wait behind it
waiter.kill()  # a client gone: its greenlet killed while it waits
leader.kill()  # and the leader, while it waits for the lock
lock.rollback()
behind.join(timeout=10)
later = gevent.spawn(write, 4)
later.join(timeout=10)
with db.connection_context():
    rows = [r[0] for r in db.execute_sql("SELECT n FROM shared_probe ORDER BY n")]
print(json.dumps({"behind": behind.value, "later": later.value, "rows": rows}))
"""


def test_greenlets_killed_while_they_wait_leave_the_others_writing(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", GREENLETS, str(tmp_path / "store.db"), str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    # The one behind them took the lead; nothing was left waiting for a dead greenlet.
    assert outcome == {"behind": 3, "later": 4, "rows": [3, 4]}
