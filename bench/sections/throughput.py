"""Throughput and latency: every target at every concurrency, and its tables in the report.

Repeats go round all targets, so drift hits all alike. With `--against
REV`, the other revision's gateway joins the same rounds (an A/B). The
section also records the gateway log's pool warnings and ERROR lines, and,
where the mode asks for it, the cross-check of the harness itself. Its
part of the report: the table of every point, the ratios to the backend
and the floor, the A/B table, the cross-check; and the issue's targets
that throughput decides (added latency, rps against the floor, TTFB).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bench import cross_check
from bench.markdown import section, table, verdict
from bench.services import POOL_FULL_WARNING, backend_stats
from bench.targets import AGAINST, RAMP_PER_CONNECTION, TARGETS, Target, load

if TYPE_CHECKING:
    from bench.run import Context

ADDED_LATENCY_MS = 1.5
STORE_SHARE_OF_FLOOR = 0.65
NO_STORE_SHARE_OF_FLOOR = 0.80
TTFB_TIMES_FLOOR = 2.0


def run(context: Context) -> dict:
    """The throughput rows, the gateway log's warnings and errors, and the cross-check."""
    results: dict = {
        "throughput": rounds(context),
        "pool_full_warnings": context.gateway.log_lines(POOL_FULL_WARNING),
        "gateway_errors_logged": context.gateway.error_lines(),
    }
    if context.mode.cross_check:
        results["cross_check"] = cross_check.measure(context)
    return results


def rounds(context: Context) -> list[dict]:
    """Every target at every concurrency, the `--against` gateway's too; the median run of each."""
    mode, backend = context.mode, context.backend
    where = {"direct": backend, "direct stream": backend, "floor": context.floor}
    targets = dict(TARGETS)
    against = context.against_gateway
    if against is not None:
        theirs = against_targets()
        targets.update(theirs)
        where.update(dict.fromkeys(theirs, against))
    rows = []
    for concurrency in mode.concurrencies:
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        connections: dict[str, list[int]] = {name: [0, 0] for name in targets}
        for _ in range(mode.repeats):
            for target in targets.values():
                service = where.get(target.name, context.gateway)
                before = backend_stats(backend)
                runs[target.name].append(
                    load(
                        service,
                        target,
                        concurrency,
                        duration=mode.duration,
                        warmup=mode.warmup,
                        ramp=min(concurrency * RAMP_PER_CONNECTION, mode.warmup * 0.8),
                        watch=[] if service is backend else [backend],
                    )
                )
                after = backend_stats(backend)
                connections[target.name][0] += after["connections"] - before["connections"]
                connections[target.name][1] += after["requests"] - before["requests"]
        for name, target_runs in runs.items():
            opened, served = connections[name]
            row = {"target": name, "concurrency": concurrency, **median_run(target_runs)}
            row["upstream_connections_per_request"] = round(opened / max(served, 1), 3)
            rows.append(row)
            print(progress_line(row), flush=True)
    return rows


def against_targets() -> dict[str, Target]:
    """The gateway's targets again, for the gateway built from another revision."""
    return {
        name.replace("gateway", AGAINST): replace(target, name=name.replace("gateway", AGAINST))
        for name, target in TARGETS.items()
        if name.startswith("gateway")
    }


def median_run(runs: list[dict]) -> dict:
    """The run with the median rps; its errors are those of all the runs, so none hide."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["rps_runs"] = [r["rps"] for r in runs]
    kinds: Counter = Counter()
    for one in runs:
        kinds.update(one["error_kinds"])
    chosen["errors"], chosen["error_kinds"] = sum(kinds.values()), dict(kinds)
    return chosen


def progress_line(row: dict) -> str:
    """One measured point, as the run prints it."""
    lat = row["latency_ms"]
    return (
        f"{row['target']:>17} c={row['concurrency']:<3} {row['rps']:>8.0f} rps  "
        f"p50={lat['p50']:.2f} p99={lat['p99']:.2f} ms  ttfb p50={row['ttfb_ms']['p50']:.2f} ms  "
        f"errors={row['errors']}  cpu%={row['cpu_pct']}"
    )


def report(results: dict) -> list[str]:
    """Throughput and latency, the ratios; the A/B and the cross-check where they ran."""
    lines = section(
        "Throughput and latency",
        throughput_table(results),
        "",
        f"urllib3 'Connection pool is full' warnings in the gateway log: "
        f"{results.get('pool_full_warnings', 0)}",
        "",
        *_logged_errors(results.get("gateway_errors_logged") or []),
        ratios_table(results),
    )
    if "against" in results:
        lines += section("Against another revision", against_table(results))
    if "cross_check" in results:
        lines += section(
            "Backend alone, load generator check", cross_check.tables(results["cross_check"])
        )
    return lines


def _point(results: dict, target: str, concurrency: int) -> dict:
    return next(
        row
        for row in results["throughput"]
        if row["target"] == target and row["concurrency"] == concurrency
    )


def _loaded(results: dict) -> int:
    """The concurrency the throughput targets are read at: 32, or the highest run."""
    measured = {row["concurrency"] for row in results["throughput"]}
    return 32 if 32 in measured else max(measured)


def targets(results: dict) -> list[list[Any]]:
    """The issue's targets throughput decides, each with the measured value and met/missed."""
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
                verdict(added <= ADDED_LATENCY_MS),
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
                verdict(ratio >= share),
            ]
        )
    ttfb = _point(results, "gateway stream", loaded)["ttfb_ms"]["p50"]
    limit = TTFB_TIMES_FLOOR * floor["latency_ms"]["p50"]
    rows.append(
        [
            f"stream TTFB p50 c={loaded} vs 2x floor p50",
            f"<= {limit:.2f} ms",
            f"{ttfb:.2f} ms",
            verdict(ttfb <= limit),
        ]
    )
    return rows


def _upstream(row: dict) -> Any:
    """New backend connections per request (blank for the backend itself)."""
    return "" if row["target"].startswith("direct") else row["upstream_connections_per_request"]


def throughput_table(results: dict) -> str:
    """Every point: rps, latency, TTFB, errors, CPU, upstream connections."""
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
    return table(header, rows)


def ratios_table(results: dict) -> str:
    """The gateway's and the floor's rps and p50 next to the backend's and the floor's."""
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
    return table(header, rows)


def against_table(results: dict) -> str:
    """This code's gateway next to the one of another revision, loaded in the same rounds."""
    revision = f"`{results['against']['revision']}` ({results['against']['tree']})"
    rows = []
    for concurrency in sorted({row["concurrency"] for row in results["throughput"]}):
        for kind in ("store", "no-store", "stream"):
            ours = _point(results, f"gateway {kind}", concurrency)
            theirs = _point(results, f"{AGAINST} {kind}", concurrency)
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
    return f'This code against {revision}, in the same rounds ("then"):\n\n' + table(header, rows)


def _logged_errors(lines: list[str]) -> list[str]:
    """The ERROR lines the gateway logged during the throughput runs, if any."""
    if not lines:
        return ["No ERROR lines in the gateway log.", ""]
    return ["ERROR lines in the gateway log (first ones):", "", "```", *lines, "```", ""]
