"""Profiles of the gateway workers under load (py-spy), and their tables in the report.

Both workers at concurrency 32, JSON answers and streams, on CPU and once
on the wall clock (`--idle`); `bench/profile.py` records and summarises.
Each profile's collapsed stacks go to `--out` beside the report.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.markdown import section, table
from bench.profile import record, summarize
from bench.targets import RAMP_PER_CONNECTION, TARGETS, load

if TYPE_CHECKING:
    from bench.run import Context

PROFILES = (
    ("gateway store", "gateway store (CPU)", False),
    ("gateway store", "gateway store (wall clock, --idle)", True),
    ("gateway stream", "gateway stream (CPU)", False),
)


def run(context: Context) -> dict:
    """py-spy both gateway workers under load at concurrency 32 (nothing in modes without it)."""
    if not context.mode.profile_seconds:
        return {}
    return {"profile": profile_gateway(context)}


def profile_gateway(context: Context) -> dict:
    """Each of `PROFILES` in turn: its summary and file, or why none was recorded."""
    seconds, gateway = context.mode.profile_seconds, context.gateway
    results = {}
    for target_name, label, idle in PROFILES:
        name = label.split(" (")[0].replace(" ", "-")
        output = context.out / f"profile-{name}{'-idle' if idle else ''}.txt"
        loader = threading.Thread(
            target=load,
            args=(gateway, TARGETS[target_name], 32),
            kwargs={"duration": seconds + 2, "ramp": 32 * RAMP_PER_CONNECTION},
        )
        loader.start()
        time.sleep(1.0)
        recorded = record(gateway.children(), seconds, output, idle=idle)
        loader.join()
        if recorded is None:
            return {"skipped": "py-spy is not installed"}
        results[label] = {"file": output.name, **summarize(output)}
    return results


def summarize_again(results: dict, folder: Path) -> None:
    """Summarise each profile afresh from its file in `folder`, where the file is there."""
    for summary in results.get("profile", {}).values():
        if isinstance(summary, dict) and (folder / summary["file"]).exists():
            summary.update(summarize(folder / summary["file"]))


def report(results: dict) -> list[str]:
    """Each profile's named costs, gateway functions and own samples (where one was taken)."""
    if "profile" not in results:
        return []
    return section("Profile of the gateway workers (py-spy)", profile_tables(results["profile"]))


def profile_tables(profiles: dict) -> str:
    """Three tables per profile, or why there are none."""
    if "skipped" in profiles:
        return profiles["skipped"]
    parts = []
    for name, summary in profiles.items():
        parts.append(
            f"**{name}**, c=32, both workers ({summary['samples']} samples, `{summary['file']}`)\n"
        )
        parts.append(table(["cost (inclusive)", "% of samples"], summary["costs"]))
        parts.append("")
        parts.append(table(["gateway function (inclusive)", "%"], summary["app_inclusive"]))
        parts.append("")
        parts.append(table(["function (own samples)", "%"], summary["own"]))
        parts.append("")
    return "\n".join(parts)
