"""`gateway backup FILE`: a consistent copy of the live SQLite store, taken while it serves.

SQLite's online backup API copies every page in one step, inside one read
transaction: the copy is the database as it was at that instant, and in
WAL mode writers go on meanwhile. The copy is written beside its target
and renamed into place once checked, so a failed backup never leaves a
half-written file under the target's name. It is a self-contained file
(rollback journal, not WAL): restoring is copying it back while the
gateway is stopped (docs/DEPLOYMENT.md).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


class BackupError(RuntimeError):
    """The backup could not be made; the message says why."""


def backup_sqlite(source: str, target: str) -> int:
    """Copy the SQLite store at `source` to `target`; return the copy's size in bytes."""
    if not Path(source).is_file():
        raise BackupError(f"no SQLite store at {source}")
    target_path = Path(target).resolve()
    if target_path == Path(source).resolve():
        raise BackupError("the backup would overwrite the store itself")
    partial = target_path.with_name(target_path.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as live:
            copy = sqlite3.connect(partial)
            try:
                live.backup(copy)  # all pages in one step: one consistent snapshot
                copy.execute("PRAGMA journal_mode = delete")
                checked = copy.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                copy.close()
        if checked != "ok":
            raise BackupError(f"the copy failed its integrity check: {checked}")
        os.replace(partial, target_path)
    except (sqlite3.Error, OSError) as exc:
        raise BackupError(str(exc)) from exc
    finally:
        partial.unlink(missing_ok=True)
    return target_path.stat().st_size
