"""Store writes as the store grows: time per saved response and WAL frames per commit.

The gateway's own `save_response`, in this process, on a fresh SQLite file
opened with the gateway's settings (WAL, `synchronous=normal`). Each save
is what a stored non-streaming answer writes: the response, one input item,
one output item, in one transaction. It runs twice in the same run: with
the gateway's ids (which start with the time they were made) and, as the
baseline, with ids of the same length that are random throughout (what
the gateway made before). Random ids land anywhere in the id indexes, so
each commit rewrites more pages, and more of them fall outside the page
cache as the file grows.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

WAL_HEADER_BYTES = 32
FRAME_HEADER_BYTES = 24
TIMED_SAVES = 2000  # timed at each checkpoint
FRAME_SAVES = 100  # saves whose WAL frames are counted (well under one auto-checkpoint)
ID_KINDS = ("gateway", "random")


def store_writes(workdir: Path, checkpoints: tuple[int, ...]) -> list[dict]:
    """One row per id kind and checkpoint: µs per save and WAL frames per commit."""
    from app.store import db

    rows = []
    for kind in ID_KINDS:
        path = workdir / f"writes-{kind}.db"
        database = _open(path)
        saved = 0
        try:
            for checkpoint in checkpoints:
                while saved < checkpoint:
                    _save(kind)
                    saved += 1
                timings = [_timed_save(kind) for _ in range(TIMED_SAVES)]
                saved += TIMED_SAVES
                frames = _frames_per_commit(path, kind)
                saved += FRAME_SAVES
                rows.append(
                    {
                        "ids": kind,
                        "stored_before": checkpoint,
                        "us_per_save_p50": round(statistics.median(timings) * 1e6, 1),
                        "us_per_save_mean": round(statistics.fmean(timings) * 1e6, 1),
                        "wal_frames_per_commit": frames,
                        "file_mb": round(path.stat().st_size / 1e6, 1),
                    }
                )
        finally:
            database.close()
            db.initialize(None)
    return rows


def _open(path: Path) -> Any:
    from app.config import load_settings
    from app.store import db, open_database
    from app.store.models import MODELS

    database, _ = open_database(load_settings({"store_dsn": str(path)}, environ={}))
    db.initialize(database)
    with db.connection_context():
        db.create_tables(MODELS, safe=True)
    return database


def _timed_save(kind: str) -> float:
    started = time.perf_counter()
    _save(kind)
    return time.perf_counter() - started


def _save(kind: str) -> None:
    from app.auth.principal import Owner
    from app.store import db
    from app.store.responses import save_response

    response, input_items = _answer(kind)
    with db.connection_context():
        save_response(Owner(), response, input_items)


def _answer(kind: str) -> tuple[dict, list[dict]]:
    """A finished response as the gateway stores it, with its one input item."""
    from app.protocol.chat.completion import usage_from_chat
    from app.protocol.ids import new_id
    from app.protocol.responses.objects import complete_response, message_item, new_response

    make_id = new_id if kind == "gateway" else _random_id
    response = new_response({"model": "bench"}, make_id("resp"), int(time.time()))
    answer = message_item("Hello! How can I help you today?", item_id=make_id("msg"))
    usage = {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}
    complete_response(response, [answer], usage_from_chat(usage), None)
    question = {
        "id": make_id("msg"),
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Say hello."}],
    }
    return response, [question]


def _random_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def _frames_per_commit(path: Path, kind: str) -> float:
    """WAL frames written per save, from the WAL's growth after a full checkpoint."""
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    for _ in range(FRAME_SAVES):
        _save(kind)
    wal_bytes = os.path.getsize(f"{path}-wal") - WAL_HEADER_BYTES
    return round(wal_bytes / (FRAME_HEADER_BYTES + page_size) / FRAME_SAVES, 2)
