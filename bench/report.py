"""Turning the figures of a run into Markdown: tables, ratios and the issue's targets.

python -m bench.report bench/results/quick   # write report.md again from results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench import profile

ADDED_LATENCY_MS = 1.5
STORE_SHARE_OF_FLOOR = 0.65
NO_STORE_SHARE_OF_FLOOR = 0.80
TTFB_TIMES_FLOOR = 2.0
SCALE_STREAMS = 5000
KB_PER_STREAM = 50.0
RSS_GROWTH_PCT = 10.0
HELD_SHARE = 0.99  # streams open at the same moment, as the backend counts them


def progress_line(row: dict) -> str:
    lat = row["latency_ms"]
    return (
        f"{row['target']:>17} c={row['concurrency']:<3} {row['rps']:>8.0f} rps  "
        f"p50={lat['p50']:.2f} p99={lat['p99']:.2f} ms  ttfb p50={row['ttfb_ms']['p50']:.2f} ms  "
        f"errors={row['errors']}  cpu%={row['cpu_pct']}"
    )


def scale_line(row: dict) -> str:
    return (
        f"scale {row.get('target', 'gateway')} {row['streams']} ({_tick(row)} ms): "
        f"completed={row['completed']} "
        f"errors={row['errors']} peak open={row['peak_open_at_backend']} "
        f"{row['kb_per_stream']} KB/stream {row.get('cpu_us_per_token', '-')} us CPU/token"
    )


def growth_line(row: dict) -> str:
    return (
        f"{row['kind']} depth {row['depth']}: p50={row['latency_ms']['p50']:.2f} ms "
        f"rows={row['rows']} queries={row['queries']}"
    )


def writes_line(row: dict) -> str:
    return (
        f"writes, {row['ids']} ids, {row['stored_before']} stored: "
        f"{row['us_per_save_p50']} us per save (p50), {row['wal_frames_per_commit']} WAL frames"
    )


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _point(results: dict, target: str, concurrency: int) -> dict:
    return next(
        row
        for row in results["throughput"]
        if row["target"] == target and row["concurrency"] == concurrency
    )


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def _loaded(results: dict) -> int:
    """The concurrency the throughput targets are read at: 32, or the highest run."""
    measured = {row["concurrency"] for row in results["throughput"]}
    return 32 if 32 in measured else max(measured)


def targets(results: dict) -> list[list[Any]]:
    """The issue's targets, each with the measured value and met/missed."""
    rows = []
    loaded = _loaded(results)
    direct = _point(results, "direct", 1)["latency_ms"]["p50"]
    for name in ("gateway store", "gateway no-store"):
        added = _point(results, name, 1)["latency_ms"]["p50"] - direct
        rows.append(
            [
                f"added latency c=1, {name} (p50 - direct p50)",
                f"<= {ADDED_LATENCY_MS} ms",
                f"{added:.2f} ms",
                _verdict(added <= ADDED_LATENCY_MS),
            ]
        )
    floor = _point(results, "floor", loaded)
    for name, share in (
        ("gateway store", STORE_SHARE_OF_FLOOR),
        ("gateway no-store", NO_STORE_SHARE_OF_FLOOR),
    ):
        ratio = _point(results, name, loaded)["rps"] / max(floor["rps"], 1e-9)
        rows.append(
            [
                f"rps c={loaded}, {name} / floor",
                f">= {share:.0%}",
                f"{ratio:.0%}",
                _verdict(ratio >= share),
            ]
        )
    ttfb = _point(results, "gateway stream", loaded)["ttfb_ms"]["p50"]
    limit = TTFB_TIMES_FLOOR * floor["latency_ms"]["p50"]
    rows.append(
        [
            f"stream TTFB p50 c={loaded} vs 2x floor p50",
            f"<= {limit:.2f} ms",
            f"{ttfb:.2f} ms",
            _verdict(ttfb <= limit),
        ]
    )
    for row in results.get("scale", []):
        if row["streams"] == SCALE_STREAMS and row.get("target", "gateway") == "gateway":
            tick = _tick(row)
            slow = "" if tick == "100-500" else f", a token every {tick} ms (slow end of the range)"
            all_done = row["errors"] == 0 and row["completed"] == row["streams"]
            held = row["peak_open_at_backend"] >= HELD_SHARE * row["streams"]
            rows.append(
                [
                    f"{SCALE_STREAMS} streams held at once: 0 errors, <= {KB_PER_STREAM:g} KB each"
                    + slow,
                    f"0 errors, {SCALE_STREAMS} open, <= 50 KB",
                    f"{row['errors']} errors, {row['peak_open_at_backend']} open at most, "
                    f"{row['kb_per_stream']} KB",
                    _verdict(all_done and held and row["kb_per_stream"] <= KB_PER_STREAM),
                ]
            )
    memory = results.get("memory")
    if memory:
        first, last = (int(n) for n in memory["readings"])
        rows.append(
            [
                f"RSS after {last:,} vs {first:,} requests",
                f"<= +{RSS_GROWTH_PCT:g}%",
                f"{memory['growth_pct']:+.1f}%",
                _verdict(memory["growth_pct"] <= RSS_GROWTH_PCT),
            ]
        )
    return rows


def _upstream(row: dict) -> Any:
    """New backend connections per request (blank for the backend itself)."""
    return "" if row["target"].startswith("direct") else row["upstream_connections_per_request"]


def throughput_section(results: dict) -> str:
    rows = []
    for row in results["throughput"]:
        lat, cpu = row["latency_ms"], row["cpu_pct"]
        rows.append(
            [
                row["concurrency"],
                row["target"],
                f"{row['rps']:.0f}",
                lat["p50"],
                lat["p90"],
                lat["p99"],
                row["ttfb_ms"]["p50"],
                row["errors"],
                " / ".join(f"{cpu[name]:.0f}%" for name in cpu),
                " + ".join(str(pct) for pct in row.get("worker_cpu_pct", [])),
                _upstream(row),
            ]
        )
    header = [
        "c",
        "target",
        "rps",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "TTFB p50 ms",
        "errors (all rounds)",
    ]
    header += ["CPU (target / backend)", "per worker %", "upstream conns/request"]
    return _table(header, rows)


def ratios_section(results: dict) -> str:
    rows = []
    for concurrency in sorted({row["concurrency"] for row in results["throughput"]}):
        direct = _point(results, "direct", concurrency)
        direct_stream = _point(results, "direct stream", concurrency)
        floor = _point(results, "floor", concurrency)
        for name in ("gateway store", "gateway no-store", "gateway stream"):
            point = _point(results, name, concurrency)
            base = direct_stream if name == "gateway stream" else direct
            rows.append(
                [
                    concurrency,
                    name,
                    f"{point['rps'] / base['rps']:.1%}",
                    f"{point['rps'] / floor['rps']:.0%}",
                    f"{point['latency_ms']['p50'] - base['latency_ms']['p50']:.2f}",
                    f"{point['latency_ms']['p50'] - floor['latency_ms']['p50']:.2f}",
                ]
            )
        rows.append(
            [
                concurrency,
                "floor",
                f"{floor['rps'] / direct['rps']:.1%}",
                "100%",
                f"{floor['latency_ms']['p50'] - direct['latency_ms']['p50']:.2f}",
                "0",
            ]
        )
    header = ["c", "", "rps / direct", "rps / floor", "p50 - direct ms", "p50 - floor ms"]
    return _table(header, rows)


def cross_check_section(checks: dict) -> str:
    tools = _table(
        ["target (c=32)", "tool", "rps", "p50 ms", "p99 ms", "load tool CPU µs/request"],
        [
            [row["target"], row["tool"], f"{row['rps']:.0f}", row["p50"], row["p99"]]
            + [row["cpu_us_per_request"]]
            for row in checks["loadgen_vs_wrk"]
        ],
    )
    servers = _table(
        ["backend server", "target (c=32)", "rps", "p50 ms", "p99 ms", "backend CPU"],
        [
            [row["server"], row["target"], f"{row['rps']:.0f}", row["latency_ms"]["p50"]]
            + [row["latency_ms"]["p99"], f"{list(row['cpu_pct'].values())[0]:.0f}%"]
            for row in checks["backend_servers"]
        ],
    )
    return tools + "\n\n" + servers


def profile_section(profiles: dict) -> str:
    if "skipped" in profiles:
        return profiles["skipped"]
    parts = []
    for name, summary in profiles.items():
        parts.append(
            f"**{name}**, c=32, both workers ({summary['samples']} samples, `{summary['file']}`)\n"
        )
        parts.append(_table(["cost (inclusive)", "% of samples"], summary["costs"]))
        parts.append("")
        parts.append(_table(["gateway function (inclusive)", "%"], summary["app_inclusive"]))
        parts.append("")
        parts.append(_table(["function (own samples)", "%"], summary["own"]))
        parts.append("")
    return "\n".join(parts)


def _tick(row: dict) -> str:
    """A long stream's time between tokens, in ms: `100-500` or `500`."""
    low, high = row.get("tick_ms", (100, 500))
    return f"{low}" if low == high else f"{low}-{high}"


def scale_section(rows: list[dict]) -> str:
    return _table(
        ["target", "streams", "token every ms", "tokens", "worker_connections", "completed"]
        + ["errors", "peak open"]
        + ["RSS before MB", "RSS peak MB", "KB/stream", "p50 s (nominal)", "TTFB p50 ms"]
        + ["TTFB p99 ms"]
        + ["CPU µs/token", "CPU (target / backend / loadgen)"],
        [
            [
                row.get("target", "gateway"),
                row["streams"],
                _tick(row),
                row.get("tokens", "-"),
                row["worker_connections"],
                row["completed"],
                row["errors"],
                row["peak_open_at_backend"],
                f"{row['rss_before_kb'] / 1024:.0f}",
                f"{row['rss_peak_kb'] / 1024:.0f}",
                row["kb_per_stream"],
                f"{row['latency_ms']['p50'] / 1000:.1f} ({row.get('nominal_s', '-')})",
                row["ttfb_ms"]["p50"],
                row["ttfb_ms"]["p99"],
                row.get("cpu_us_per_token", "-"),
                " / ".join(f"{value:.0f}%" for value in row["cpu_pct"].values()),
            ]
            for row in rows
        ],
    )


def growth_section(rows: list[dict]) -> str:
    return _table(
        ["history", "depth", "p50 ms", "p99 ms", "rows read", "SQL statements", "load ms"]
        + ["messages sent"],
        [
            [
                row["kind"],
                row["depth"],
                row["latency_ms"]["p50"],
                row["latency_ms"]["p99"],
                row["rows"],
                row["queries"],
                row["load_ms"],
                row["messages_sent"],
            ]
            for row in rows
        ],
    )


def memory_section(memory: dict) -> str:
    readings = _table(
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
    return readings + "\n\n" + size


def writes_section(rows: list[dict]) -> str:
    return _table(
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
    )


def per_token_section(figures: dict) -> str:
    table = _table(
        ["JSON", "µs per token"],
        [[name, figures[name]["us_per_token"]] for name in ("gateway", "json module")],
    )
    return (
        f"{figures['streams_timed']} streams of {figures['tokens_per_stream']} tokens through "
        "the body decoder, SSE parser, translator and event encoder, in one process.\n\n" + table
    )


def render(results: dict) -> str:
    """The whole report."""
    machine = results["machine"]
    parts = [
        f"# Benchmark report ({results['mode']['name']} mode, {results['elapsed_s']:.0f} s)",
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory_gb']} GB, "
        f"Python {machine['python']}, kernel {machine['kernel']}, "
        f"open files limit {machine['open_files_limit']}.",
        "",
        "## Targets (issue 5)",
        "",
        _table(["target", "limit", "measured", ""], targets(results)),
        "",
        "## Throughput and latency",
        "",
        throughput_section(results),
        "",
        f"urllib3 'Connection pool is full' warnings in the gateway log: "
        f"{results.get('pool_full_warnings', 0)}",
        "",
        *_logged_errors(results.get("gateway_errors_logged") or []),
        ratios_section(results),
    ]
    if "against" in results:
        parts += ["", "## Against another revision", "", against_section(results)]
    if "cross_check" in results:
        parts += [
            "",
            "## Backend alone, load generator check",
            "",
            cross_check_section(results["cross_check"]),
        ]
    if "profile" in results:
        parts += [
            "",
            "## Profile of the gateway workers (py-spy)",
            "",
            profile_section(results["profile"]),
        ]
    parts += ["", "## Growth of history", "", growth_section(results["growth"])]
    parts += ["", "## Memory over requests, database size", "", memory_section(results["memory"])]
    parts += ["", "## Long streams held at once", "", scale_section(results["scale"]), ""]
    if "writes" in results:
        parts += ["## Store writes as the store grows", "", writes_section(results["writes"]), ""]
    if "tokens" in results:
        work = per_token_section(results["tokens"])
        parts += ["## The gateway's own work per token", "", work, ""]
    return "\n".join(parts)


def against_section(results: dict) -> str:
    """This code's gateway next to the one of another revision, loaded in the same rounds."""
    revision = f"`{results['against']['revision']}` ({results['against']['tree']})"
    rows = []
    for concurrency in sorted({row["concurrency"] for row in results["throughput"]}):
        for kind in ("store", "no-store", "stream"):
            ours = _point(results, f"gateway {kind}", concurrency)
            theirs = _point(results, f"against {kind}", concurrency)
            direct = _point(results, "direct stream" if kind == "stream" else "direct", concurrency)
            added = [
                point["latency_ms"]["p50"] - direct["latency_ms"]["p50"] for point in (ours, theirs)
            ]
            rows.append(
                [
                    concurrency,
                    kind,
                    f"{ours['rps']:.0f}",
                    f"{theirs['rps']:.0f}",
                    f"{ours['rps'] / theirs['rps']:.0%}",
                    f"{added[0]:.2f}",
                    f"{added[1]:.2f}",
                    ours["ttfb_ms"]["p50"],
                    theirs["ttfb_ms"]["p50"],
                ]
            )
    header = ["c", "gateway", "rps", "rps then", "rps / then"]
    header += ["p50 - direct ms", "then", "TTFB p50 ms", "then"]
    return f'This code against {revision}, in the same rounds ("then"):\n\n' + _table(header, rows)


def _logged_errors(lines: list[str]) -> list[str]:
    """The ERROR lines the gateway logged during the throughput runs, if any."""
    if not lines:
        return ["No ERROR lines in the gateway log.", ""]
    return ["ERROR lines in the gateway log (first ones):", "", "```", *lines, "```", ""]


def main(argv: list[str] | None = None) -> None:
    """Render a results directory again (profiles summarised afresh from their files)."""
    folder = Path((argv or sys.argv[1:])[0])
    results = json.loads((folder / "results.json").read_text())
    for summary in results.get("profile", {}).values():
        if isinstance(summary, dict) and (folder / summary["file"]).exists():
            summary.update(profile.summarize(folder / summary["file"]))
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    (folder / "report.md").write_text(render(results))


if __name__ == "__main__":
    main()
