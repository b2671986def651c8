"""Long streams held at once: memory per stream, errors, CPU per token; their table.

Each count of streams runs on a fresh gateway, the streams opened at
`SCALE_OPEN_RATE` a second, a token every 100-500 ms. The floor app holds
the same streams at the middle count and at the largest, and both hold
the largest once more at the slow end of the range. With `--against
REV`, that revision's gateway holds the largest count too. Its part of
the report: the table, and the issue's target for the largest count.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.markdown import section, table, verdict
from bench.services import POOL_FULL_WARNING, ROOT, Service, backend_stats, start_gunicorn
from bench.targets import AGAINST, GATEWAY_STREAM_DONE, PROMPT, TARGETS, Target, load

if TYPE_CHECKING:
    from bench.run import Context

# Long streams are opened at this rate; they last ~0.3 s per token, long
# enough (150 tokens) that the last is open before the first ends.
SCALE_OPEN_RATE = 400
SCALE_TICK_MS = (100, 500)  # a long stream's tokens come this many ms apart (uniform)
SLOW_TICK_MS = (500, 500)  # the slow end of that range
SCALE_TOKEN_SECONDS = sum(SCALE_TICK_MS) / 2000  # the mean: 0.3 s between tokens
SCALE_STREAMS = 5000  # the target: this many held at once...
KB_PER_STREAM = 50.0  # ...with no more memory each than this
HELD_SHARE = 0.99  # streams open at the same moment, as the backend counts them


def run(context: Context) -> dict:
    """Hold N long streams at once on a fresh gateway each; memory per stream, errors, CPU.

    The floor app relays the same streams at the middle N and at the largest:
    the stack's own CPU per token, next to the gateway's, and whether the
    stack alone can hold the largest N at that token rate. The largest N runs
    once more with a token every 500 ms, the slow end of the range, for both.
    With an `--against` tree, its gateway holds the largest N too, right
    after this one's.
    """
    streams = context.mode.scale_streams
    middle, largest = streams[len(streams) // 2], streams[-1]
    runs = []
    for count in streams:
        runs.append(("gateway", "wsgi:app", count, SCALE_TICK_MS, ROOT))
        if count == largest and context.against_tree is not None:
            runs.append((AGAINST, "wsgi:app", count, SCALE_TICK_MS, context.against_tree))
        if count in (middle, largest):
            runs.append(("floor", "bench.floor_app:app", count, SCALE_TICK_MS, ROOT))
    for name, app in (("gateway", "wsgi:app"), ("floor", "bench.floor_app:app")):
        runs.append((name, app, largest, SLOW_TICK_MS, ROOT))
    rows = []
    for name, app, count, tick_ms, root in runs:
        rows.append(_hold_streams(context, name, app, count, tick_ms, root))
        print(scale_line(rows[-1]), flush=True)
    return {"scale": rows}


def _hold_streams(
    context: Context,
    name: str,
    app: str,
    count: int,
    tick_ms: tuple[int, int],
    root: Path = ROOT,
) -> dict:
    backend = context.backend
    token_seconds = sum(tick_ms) / 2000
    # As many tokens as last the same time as the full range's streams do.
    tokens = max(1, round(context.mode.scale_tokens * SCALE_TOKEN_SECONDS / token_seconds))
    target = Target(
        "long stream",
        "/v1/responses",
        {
            "model": f"bench-tick-{tick_ms[0]}-{tick_ms[1]}-{tokens}",
            "input": PROMPT,
            "stream": True,
        },
        GATEWAY_STREAM_DONE,
        True,
    )
    warm = Target(
        "warm", "/v1/responses", TARGETS["gateway stream"].body, GATEWAY_STREAM_DONE, True
    )
    per_worker = max(1000, count + 100)  # gevent accepts unevenly: one worker may take most
    service = start_gunicorn(
        f"{name}-scale-{count}-{tick_ms[0]}",
        app,
        context.workdir,
        backend,
        {"GATEWAY_WORKER_CONNECTIONS": str(per_worker)},
        root=root,
    )
    try:
        load(service, warm, 16, duration=2, requests=400)
        time.sleep(0.5)
        rss_before = service.workers_rss_kb()
        backend_stats(backend, reset=True)
        sampler = Sampler(service, backend)
        sampler.start()
        ramp = max(1.0, count / SCALE_OPEN_RATE)
        cpu_before = service.cpu_seconds()
        result = load(
            service,
            target,
            count,
            duration=ramp + token_seconds * tokens * 4,
            requests=count,
            ramp=ramp,
            watch=[backend],
        )
        cpu = service.cpu_seconds() - cpu_before
        sampler.stop()
        return {
            "target": name,
            "streams": count,
            "tick_ms": list(tick_ms),
            "tokens": tokens,
            "worker_connections": per_worker,
            "completed": result["ok"],
            "errors": result["errors"],
            "error_kinds": result["error_kinds"],
            "peak_open_at_backend": sampler.peak_open,
            "rss_before_kb": rss_before,
            "rss_peak_kb": sampler.peak_rss,
            "rss_after_kb": service.workers_rss_kb(),
            "kb_per_stream": round((sampler.peak_rss - rss_before) / max(sampler.peak_open, 1), 1),
            "nominal_s": round(token_seconds * tokens, 1),
            "latency_ms": result["latency_ms"],
            "ttfb_ms": result["ttfb_ms"],
            "cpu_pct": {**result["cpu_pct"], "loadgen": _loadgen_pct(result)},
            "worker_cpu_pct": result["worker_cpu_pct"],
            "cpu_us_per_token": round(1e6 * cpu / max(result["ok"] * tokens, 1)),
            "pool_full_warnings": service.log_lines(POOL_FULL_WARNING),
        }
    finally:
        service.stop()


def _loadgen_pct(result: dict) -> float:
    return round(100 * result["loadgen_cpu_s"] / result["wall_s"], 1)


class Sampler(threading.Thread):
    """Polls the workers' RSS and the backend's open streams; keeps the peaks."""

    INTERVAL = 0.25

    def __init__(self, gateway: Service, backend: Service) -> None:
        super().__init__(daemon=True)
        self.gateway, self.backend = gateway, backend
        self.peak_rss = self.peak_open = 0
        self.running = threading.Event()
        self.running.set()

    def run(self) -> None:
        while self.running.is_set():
            self.peak_rss = max(self.peak_rss, self.gateway.workers_rss_kb())
            with contextlib.suppress(OSError):
                self.peak_open = max(self.peak_open, backend_stats(self.backend)["streams_peak"])
            time.sleep(self.INTERVAL)

    def stop(self) -> None:
        self.running.clear()
        self.join()
        self.peak_open = max(self.peak_open, backend_stats(self.backend)["streams_peak"])


def _tick(row: dict) -> str:
    """A long stream's time between tokens, in ms: `100-500` or `500`."""
    low, high = row.get("tick_ms", (100, 500))
    return f"{low}" if low == high else f"{low}-{high}"


def scale_line(row: dict) -> str:
    """One count of streams held, as the run prints it."""
    return (
        f"scale {row.get('target', 'gateway')} {row['streams']} ({_tick(row)} ms): "
        f"completed={row['completed']} "
        f"errors={row['errors']} peak open={row['peak_open_at_backend']} "
        f"{row['kb_per_stream']} KB/stream {row.get('cpu_us_per_token', '-')} us CPU/token"
    )


def targets(results: dict) -> list[list[Any]]:
    """The issue's target for long streams, once per token rate the gateway held them at."""
    rows = []
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
                    verdict(all_done and held and row["kb_per_stream"] <= KB_PER_STREAM),
                ]
            )
    return rows


def report(results: dict) -> list[str]:
    """Every count of streams held: completed, errors, memory, latency, CPU."""
    return section("Long streams held at once", scale_table(results["scale"]))


def scale_table(rows: list[dict]) -> str:
    """One row per count of streams held, target and token rate."""
    return table(
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
