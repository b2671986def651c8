"""Retention (GATEWAY_STORE_TTL, GATEWAY_EVENTS_TTL) and the sweep, on SQLite and PostgreSQL.

Rows are made old by moving their times back in the database, as time
would. An expired response, and a conversation idle past the TTL, answer
404 at once, like deleted ones, wherever they are named (retrieval, input
items, `previous_response_id`, `conversation`, `item_reference`); a chain
ends at its first expired response. The sweep then deletes them with their
items and events, keeps the rest, prunes the events of background
responses that ended a grace period ago, and gives SQLite's freed pages
back; one sweeper at a time holds its lease; every worker's sweeper runs
beside its requests.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import openai
import pytest

from app import start_jobs
from app.services.sweep import SWEEP_LEASE, sweep
from app.store import db, retention
from app.store.models import StoredConversation, StoredEvent, StoredItem, StoredResponse
from tests import fakebackend as fb
from tests.conftest import sdk_for
from tests.integration.helpers import MODEL, assert_openai_error, create, last_chat
from tests.integration.ops_helpers import follow, wait_for_status, wait_until

ROOT = Path(__file__).resolve().parents[2]
TTL = 3600
EVENTS_TTL = 600
LONG_AGO = 2 * TTL


@pytest.fixture
def ttl_app(make_app, fresh_store):
    """A gateway on an empty database of each kind, keeping responses an hour, events 10 min."""
    return make_app(store_ttl=TTL, events_ttl=EVENTS_TTL, sweep_interval=0, **fresh_store)


def age_responses(app: Any, ids: list[str], seconds: int = LONG_AGO) -> None:
    """Move responses (and their items) `seconds` into the past."""
    with app.app_context(), db.connection_context():
        StoredResponse.update(
            created_at=StoredResponse.created_at - seconds,
            updated_at=StoredResponse.updated_at - seconds,
        ).where(StoredResponse.id.in_(ids)).execute()
        StoredItem.update(created_at=StoredItem.created_at - seconds).where(
            StoredItem.parent_id.in_(ids)
        ).execute()


def idle_conversation(
    app: Any, conversation_id: str, seconds: int = LONG_AGO, since_created_only: bool = False
) -> None:
    """Move a conversation's creation (and, unless told, its last item) into the past."""
    moved = {StoredConversation.created_at: StoredConversation.created_at - seconds}
    if not since_created_only:
        moved[StoredConversation.updated_at] = StoredConversation.updated_at - seconds
    with app.app_context(), db.connection_context():
        StoredConversation.update(moved).where(StoredConversation.id == conversation_id).execute()


def rows(app: Any, model: Any, where: Any) -> int:
    with app.app_context(), db.connection_context():
        return model.select().where(where).count()


def respond(sdk: openai.OpenAI, backend: fb.FakeBackend, text: str, **params: Any) -> Any:
    backend.enqueue(fb.text(text))
    return create(sdk, **params).response


def refused(call: Any, status: int = 404) -> dict[str, Any]:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    return assert_openai_error(caught.value, status)


def test_an_expired_response_is_gone_wherever_it_is_named(ttl_app, backend):
    sdk = sdk_for(ttl_app)
    old = respond(sdk, backend, "Old answer.", input="First.")
    new = respond(sdk, backend, "New answer.", input="Second.", previous_response_id=old.id)
    age_responses(ttl_app, [old.id])

    assert refused(lambda: sdk.responses.retrieve(old.id))["param"] == "response_id"
    refused(lambda: sdk.responses.input_items.list(old.id))
    refused(lambda: sdk.responses.delete(old.id))
    error = refused(
        lambda: sdk.responses.create(model=MODEL, input="x", previous_response_id=old.id)
    )
    assert error["code"] == "previous_response_not_found"
    reference = [{"type": "item_reference", "id": old.output[0].id}]
    assert refused(lambda: sdk.responses.create(model=MODEL, input=reference))["code"] == (
        "item_not_found"
    )
    # The chain ends at its first expired response.
    respond(sdk, backend, "Third answer.", input="Third.", previous_response_id=new.id)
    assert [m["content"] for m in last_chat(backend)["messages"]] == [
        "Second.",
        "New answer.",
        "Third.",
    ]
    assert sdk.responses.retrieve(new.id).status == "completed"


def test_a_conversation_idle_past_the_ttl_is_gone(ttl_app, backend):
    sdk = sdk_for(ttl_app)
    idle = sdk.conversations.create(items=[{"role": "user", "content": "Hello."}])
    busy = sdk.conversations.create(items=[{"role": "user", "content": "Hi."}])
    idle_conversation(ttl_app, idle.id)
    idle_conversation(ttl_app, busy.id, since_created_only=True)  # old, but had an item lately
    respond(sdk, backend, "Hi again.", input="Still here.", conversation=busy.id)

    refused(lambda: sdk.conversations.retrieve(idle.id))
    refused(lambda: sdk.conversations.items.list(idle.id))
    refused(lambda: sdk.conversations.update(idle.id, metadata={"a": "b"}))
    error = refused(lambda: sdk.responses.create(model=MODEL, input="x", conversation=idle.id))
    assert error["code"] == "conversation_not_found"
    items = sdk.conversations.items.list(busy.id, order="asc")
    assert [item.content[0].text for item in items.data] == ["Hi.", "Still here.", "Hi again."]


def test_the_sweep_deletes_what_expired_and_keeps_the_rest(ttl_app, backend):
    sdk = sdk_for(ttl_app)
    expired = [respond(sdk, backend, f"Old {n}.", input="x").id for n in range(3)]
    kept = respond(sdk, backend, "Kept.", input="y").id
    idle = sdk.conversations.create(items=[{"role": "user", "content": "Hello."}]).id
    live = sdk.conversations.create(items=[{"role": "user", "content": "Hi."}]).id
    age_responses(ttl_app, expired)
    idle_conversation(ttl_app, idle)

    with ttl_app.app_context():
        report = sweep()
        assert (report.responses, report.conversations) == (3, 1)
        assert not sweep()  # nothing left to do
    assert rows(ttl_app, StoredResponse, StoredResponse.id.in_(expired)) == 0
    assert rows(ttl_app, StoredItem, StoredItem.parent_id.in_([*expired, idle])) == 0
    assert rows(ttl_app, StoredConversation, StoredConversation.id == idle) == 0
    assert sdk.responses.retrieve(kept).output_text == "Kept."
    assert sdk.conversations.items.list(live).data[0].content[0].text == "Hi."


def test_events_go_a_grace_period_after_their_response_ended(ttl_app, backend):
    sdk = sdk_for(ttl_app)
    backend.enqueue(fb.text("Done in the background."))
    ended = create(sdk, input="work", background=True).body["id"]
    wait_for_status(sdk, ended, "completed")
    backend.enqueue(fb.text("Done as well."))
    recent = create(sdk, input="work", background=True).body["id"]
    wait_for_status(sdk, recent, "completed")
    with ttl_app.app_context(), db.connection_context():
        StoredResponse.update(updated_at=StoredResponse.updated_at - EVENTS_TTL - 1).where(
            StoredResponse.id == ended
        ).execute()

    with ttl_app.app_context():
        assert sweep().event_streams == 1
    assert rows(ttl_app, StoredEvent, StoredEvent.response_id == ended) == 0
    assert sdk.responses.retrieve(ended).output_text == "Done in the background."
    error = refused(lambda: sdk.responses.retrieve(ended, stream=True))
    assert (error["param"], error["code"]) == ("stream", "stream_expired")
    assert follow(sdk, recent)[-1]["type"] == "response.completed"


def test_a_sweep_gives_sqlite_its_free_pages_back(make_app, backend, tmp_path):
    app = make_app(store_ttl=TTL, sweep_interval=0)
    sdk = sdk_for(app)
    big = "word " * 4000
    ids = [respond(sdk, backend, "ok", input=big).id for _ in range(40)]
    path = Path(app.extensions["settings"].store.dsn)
    before = checkpointed_size(path)
    age_responses(app, ids)
    with app.app_context():
        assert sweep().pages_reclaimed > 0
        with db.connection_context():
            assert retention.free_pages() == 0
    assert checkpointed_size(path) < before / 2


def checkpointed_size(path: Path) -> int:
    """The SQLite file's size once its WAL is written back into it."""
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def test_one_sweeper_at_a_time_holds_the_lease(app):
    with app.app_context(), db.connection_context():
        assert retention.take_lease(SWEEP_LEASE, "worker-a", 60)
        assert retention.take_lease(SWEEP_LEASE, "worker-a", 60)  # its holder renews it
        assert not retention.take_lease(SWEEP_LEASE, "worker-b", 60)
        assert retention.take_lease("another-job", "worker-b", 60)
        assert retention.take_lease(SWEEP_LEASE, "worker-a", -1)  # lapses at once
        assert retention.take_lease(SWEEP_LEASE, "worker-b", 60)


def test_every_workers_sweeper_runs_beside_its_requests(make_app, backend):
    app = make_app(store_ttl=TTL, sweep_interval=0.2)
    sdk = sdk_for(app)
    old = respond(sdk, backend, "Old.", input="x").id
    age_responses(app, [old])
    start_jobs(app)
    stop: threading.Event = app.extensions["sweeper"]
    try:
        wait_until(lambda: rows(app, StoredResponse, StoredResponse.id == old) == 0, "a sweep")
        assert respond(sdk, backend, "Still serving.", input="y").status == "completed"
    finally:
        stop.set()


def gateway(store: dict[str, Any], *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {
        **os.environ,
        "SESSION_STORE_TYPE": store["store_type"],
        "SESSION_STORE_DSN": store["store_dsn"],
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_gateway_sweep_vacuum_turns_an_old_file_into_one_that_shrinks(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(ROOT / "tests/fixtures/first_release/responses.db", path)
    store = {"store_type": "sqlite", "store_dsn": str(path)}
    assert gateway(store, "migrate").returncode == 0
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA auto_vacuum").fetchone()[0] == 0  # as it was made
    swept = gateway(store, "sweep", "--vacuum", GATEWAY_STORE_TTL="1s")
    assert swept.returncode == 0, swept.stderr
    assert "responses=11" in swept.stdout and "conversations=1" in swept.stdout
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental now
        assert connection.execute("SELECT count(*) FROM items").fetchone()[0] == 0


def test_gateway_sweep_leaves_the_store_to_the_sweeper_holding_the_lease(app):
    with app.app_context(), db.connection_context():
        retention.take_lease(SWEEP_LEASE, "another-host:1", 60)
    store = {"store_type": "sqlite", "store_dsn": app.extensions["settings"].store.dsn}
    swept = gateway(store, "sweep", GATEWAY_STORE_TTL="1d")
    assert swept.returncode == 0 and "another gateway is sweeping" in swept.stdout
