"""`gateway backup FILE`: a consistent copy of the live SQLite store, and restoring it.

The backup runs as its own process while the gateway keeps writing
(responses stored one after another from threads). The copy must pass
SQLite's integrity check, be a self-contained file (no WAL beside it),
hold at least what was stored before it started, and hold every response
whole (both its input and its output items, never one without the other).
Restored in place of the store, it serves its responses again. A backup
that cannot be made says why and leaves nothing under the target's name.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import sdk_for
from tests.integration.helpers import create, retrieve, store_path

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 3
BACKUP_TIMEOUT = 60


def gateway_backup(store: Path | str, target: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "SESSION_STORE_DSN": str(store), **env}
    return subprocess.run(
        [sys.executable, "-m", "app", "backup", str(target)],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=BACKUP_TIMEOUT,
    )


def test_backup_while_writing_is_whole_and_restores(make_app, backend, tmp_path):
    app = make_app()
    sdk = sdk_for(app)
    before = [create(sdk, input="before").body for _ in range(20)]
    writing, written = threading.Event(), []

    def write() -> None:
        client = sdk_for(app)
        while not writing.is_set():
            written.append(create(client, input="during " * 200).body["id"])

    writers = [threading.Thread(target=write) for _ in range(WRITERS)]
    for writer in writers:
        writer.start()
    try:
        backed_up = gateway_backup(store_path(app), tmp_path / "copy.db")
    finally:
        writing.set()
        for writer in writers:
            writer.join(timeout=30)
    assert backed_up.returncode == 0, backed_up.stderr
    assert written, "nothing was written while the backup ran"

    copy = tmp_path / "copy.db"
    assert not copy.with_name("copy.db-wal").exists()
    with sqlite3.connect(f"file:{copy}?mode=ro", uri=True) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        ids = {row[0] for row in connection.execute("SELECT id FROM responses")}
        slots = connection.execute(
            "SELECT r.id, count(DISTINCT i.slot) FROM responses r "
            "LEFT JOIN items i ON i.parent_id = r.id GROUP BY r.id"
        ).fetchall()
    assert {body["id"] for body in before} <= ids
    assert {count for _, count in slots} == {2}, "a response without its input or output"

    restored = make_app(store_dsn=str(copy))  # the restore: the copy in the store's place
    assert [retrieve(sdk_for(restored), body["id"]) for body in before] == before


def test_backup_refuses_what_it_cannot_do_and_leaves_nothing(make_app, tmp_path):
    app = make_app()
    store = store_path(app)
    missing_dir = tmp_path / "no-such-dir" / "copy.db"
    failed = gateway_backup(store, missing_dir)
    assert failed.returncode == 2 and "gateway backup:" in failed.stderr
    assert not missing_dir.parent.exists()
    itself = gateway_backup(store, store)
    assert itself.returncode == 2 and "overwrite the store itself" in itself.stderr
    nothing = gateway_backup(tmp_path / "absent.db", tmp_path / "copy.db")
    assert nothing.returncode == 2 and "no SQLite store" in nothing.stderr
    assert not (tmp_path / "copy.db").exists()


@pytest.mark.parametrize("store_type", ["postgres", "memory"])
def test_backup_of_another_store_points_to_its_own_tools(tmp_path, store_type):
    dsn = "postgresql://gateway@127.0.0.1:1/gateway" if store_type == "postgres" else "-"
    refused = gateway_backup(dsn, tmp_path / "copy.db", SESSION_STORE_TYPE=store_type)
    assert refused.returncode == 2
    assert "backs up a SQLite store" in refused.stderr
