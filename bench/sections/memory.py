"""Memory over requests and the database's size, and their part of the report.

A fresh gateway serves stored answers up to each of the mode's two
checkpoints; the workers' RSS is read at each, and the SQLite file's
size per stored response at the end.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.markdown import section, table, verdict
from bench.services import start_gunicorn
from bench.targets import TARGETS, load

if TYPE_CHECKING:
    from bench.run import Context

RSS_GROWTH_PCT = 10.0


def run(context: Context) -> dict:
    """Workers' RSS after the first and the second checkpoint of stored responses."""
    mode = context.mode
    gateway = start_gunicorn("gateway-rss", "wsgi:app", context.workdir, context.backend)
    try:
        readings = {}
        served = 0
        for checkpoint in mode.rss_checkpoints:
            result = load(
                gateway,
                TARGETS["gateway store"],
                32,
                duration=3600,
                requests=checkpoint - served,
            )
            served = checkpoint
            readings[checkpoint] = {
                "rss_kb": gateway.workers_rss_kb(),
                "errors": result["errors"],
                "rps": result["rps"],
            }
        first, last = mode.rss_checkpoints
        growth_pct = 100 * (readings[last]["rss_kb"] / readings[first]["rss_kb"] - 1)
        memory = {
            "readings": readings,
            "growth_pct": round(growth_pct, 1),
            "database": database_size(Path(gateway.env["SESSION_STORE_DSN"])),
        }
    finally:
        gateway.stop()
    return {"memory": memory}


def database_size(path: Path) -> dict:
    """Bytes per 10k stored responses (after a WAL checkpoint, free pages left out)."""
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, free, page_size = (
            connection.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("page_count", "freelist_count", "page_size")
        )
        responses = connection.execute("SELECT count(*) FROM responses").fetchone()[0]
        items = connection.execute("SELECT count(*) FROM items").fetchone()[0]
    used = (pages - free) * page_size
    return {
        "responses": responses,
        "items": items,
        "bytes": used,
        "mb_per_10k_responses": round(used / max(responses, 1) * 10_000 / 1e6, 2),
    }


def targets(results: dict) -> list[list[Any]]:
    """The issue's target for memory: RSS grows no more than `RSS_GROWTH_PCT` between readings."""
    memory = results.get("memory")
    if not memory:
        return []
    first, last = (int(n) for n in memory["readings"])
    return [
        [
            f"RSS after {last:,} vs {first:,} requests",
            f"<= +{RSS_GROWTH_PCT:g}%",
            f"{memory['growth_pct']:+.1f}%",
            verdict(memory["growth_pct"] <= RSS_GROWTH_PCT),
        ]
    ]


def report(results: dict) -> list[str]:
    """The RSS readings, then the database's size per 10k stored responses."""
    memory = results["memory"]
    readings = table(
        ["requests served", "workers RSS MB", "rps", "errors"],
        [
            [f"{int(n):,}", f"{r['rss_kb'] / 1024:.1f}", f"{r['rps']:.0f}", r["errors"]]
            for n, r in memory["readings"].items()
        ],
    )
    db = memory["database"]
    size = (
        f"SQLite: {db['responses']:,} responses, {db['items']:,} items, "
        f"{db['bytes'] / 1e6:.1f} MB -> **{db['mb_per_10k_responses']} MB per 10k responses**"
    )
    return section("Memory over requests, database size", readings + "\n\n" + size)
