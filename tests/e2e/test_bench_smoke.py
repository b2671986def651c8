"""Smoke test of the benchmark harness: `python -m bench.run --smoke` still works.

It starts the fast backend, the floor app and the gateway under gunicorn
(and a second gateway from the git tree at HEAD, as `--against` does for an
A/B) and drives each briefly. Only that everything ran and answered is checked, never
a timing: the numbers belong to docs/BENCHMARKS.md, not to the test suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE_TIMEOUT = 180


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench-smoke")
    subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--against", "HEAD", "--out", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=SMOKE_TIMEOUT,
    )
    return json.loads((out / "results.json").read_text()), (out / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(SMOKE_TIMEOUT + 30)
def test_every_load_point_answered_without_errors(smoke_results: tuple[dict, str]) -> None:
    results, _ = smoke_results
    targets = {row["target"] for row in results["throughput"]}
    assert targets == {
        "direct",
        "direct stream",
        "floor",
        "gateway store",
        "gateway no-store",
        "gateway stream",
        "against store",
        "against no-store",
        "against stream",
    }
    for row in results["throughput"]:
        assert row["ok"] > 0 and row["errors"] == 0, row
    assert results["gateway_errors_logged"] == []


@pytest.mark.slow
@pytest.mark.timeout(SMOKE_TIMEOUT + 30)
def test_long_streams_all_complete(smoke_results: tuple[dict, str]) -> None:
    results, _ = smoke_results
    for row in results["scale"]:
        assert row["completed"] == row["streams"] and row["errors"] == 0, row
        assert row["peak_open_at_backend"] > 1
    assert "against" in {row["target"] for row in results["scale"]}


@pytest.mark.slow
@pytest.mark.timeout(SMOKE_TIMEOUT + 30)
def test_history_loads_in_the_same_number_of_queries_at_every_depth(
    smoke_results: tuple[dict, str],
) -> None:
    results, _ = smoke_results
    for kind in ("chain", "conversation"):
        rows = [row for row in results["growth"] if row["kind"] == kind]
        assert len(rows) >= 2
        assert len({row["queries"] for row in rows}) == 1, rows
        assert rows[-1]["rows"] > rows[0]["rows"]


@pytest.mark.slow
@pytest.mark.timeout(SMOKE_TIMEOUT + 30)
def test_report_names_the_targets_and_the_database_size(smoke_results: tuple[dict, str]) -> None:
    results, report = smoke_results
    assert "## Targets (issue 5)" in report
    assert results["memory"]["database"]["responses"] > 0
    assert "MB per 10k responses" in report
    assert "No ERROR lines in the gateway log." in report
    assert "## Against another revision" in report and "`HEAD`" in report


@pytest.mark.slow
@pytest.mark.timeout(SMOKE_TIMEOUT + 30)
def test_store_writes_are_measured_for_both_kinds_of_id(smoke_results: tuple[dict, str]) -> None:
    results, report = smoke_results
    measured = {(row["ids"], row["stored_before"]) for row in results["writes"]}
    assert measured == {(kind, n) for kind in ("gateway", "random") for n in (0, 1000)}
    for row in results["writes"]:
        assert row["us_per_save_p50"] > 0 and row["wal_frames_per_commit"] > 0, row
    assert "## Store writes as the store grows" in report


@pytest.mark.slow
@pytest.mark.timeout(SMOKE_TIMEOUT + 30)
def test_the_work_per_token_is_measured_against_the_json_module(
    smoke_results: tuple[dict, str],
) -> None:
    results, report = smoke_results
    for variant in ("gateway", "json module"):
        assert results["tokens"][variant]["us_per_token"] > 0
    assert "## The gateway's own work per token" in report
