"""Store writes as the store grows (`bench/writes.py` measures), and their table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.markdown import section, table
from bench.writes import store_writes

if TYPE_CHECKING:
    from bench.run import Context


def run(context: Context) -> dict:
    """µs per save and WAL frames per commit, for both kinds of id, at each checkpoint."""
    rows = store_writes(context.workdir, context.mode.write_checkpoints)
    for row in rows:
        print(writes_line(row), flush=True)
    return {"writes": rows}


def writes_line(row: dict) -> str:
    """One kind of id at one checkpoint, as the run prints it."""
    return (
        f"writes, {row['ids']} ids, {row['stored_before']} stored: "
        f"{row['us_per_save_p50']} us per save (p50), {row['wal_frames_per_commit']} WAL frames"
    )


def report(results: dict) -> list[str]:
    """The table of saves, where the run measured them (results of older runs may not have it)."""
    if "writes" not in results:
        return []
    rows = results["writes"]
    return section(
        "Store writes as the store grows",
        table(
            ["ids", "responses stored before", "µs per save p50", "µs per save mean"]
            + ["WAL frames per commit", "file MB"],
            [
                [
                    row["ids"],
                    f"{row['stored_before']:,}",
                    row["us_per_save_p50"],
                    row["us_per_save_mean"],
                    row["wal_frames_per_commit"],
                    row["file_mb"],
                ]
                for row in rows
            ],
        ),
    )
