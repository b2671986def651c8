"""Run the whole benchmark in one command and write the report.

    python -m bench.run --quick        # ~5 minutes
    python -m bench.run                # full: repeats, 10k vs 100k requests (~20 minutes)
    python -m bench.run --smoke        # seconds: only checks that the harness works

Side by side, in one run on this machine: the fast backend alone, the
floor app and the gateway (gunicorn.conf.py, 2 gevent workers) at
concurrency 1, 32 and 256; py-spy profiles of the gateway workers; long
streams held at once (scale); `previous_response_id` chains and
conversations of growing length (growth); memory after many requests;
the store's cost per saved response as it grows (writes); the gateway's
own work per streamed token, without the stack around it (tokens).
The report (Markdown) and every figure (JSON) go to `--out`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench import per_token, profile, report, writes
from bench.services import (
    ROOT,
    Service,
    backend_stats,
    export_revision,
    http_call,
    raise_open_files_limit,
    start_backend,
    start_gunicorn,
)

MODEL = "bench"
PROMPT = "Say hello."
CONCURRENCIES = (1, 32, 256)
GATEWAY_STREAM_DONE = "response.completed"
POOL_FULL_WARNING = "Connection pool is full"
CONVERSATION_BATCH = 20
# Connections are opened a few ms apart: in a burst, the gevent worker that wakes
# first accepts them all, and one core does the work of two for the whole run.
RAMP_PER_CONNECTION = 0.004
# Long streams are opened at this rate; they last ~0.3 s per token, long
# enough (150 tokens) that the last is open before the first ends.
SCALE_OPEN_RATE = 400
SCALE_TICK_MS = (100, 500)  # a long stream's tokens come this many ms apart (uniform)
SLOW_TICK_MS = (500, 500)  # the slow end of that range
SCALE_TOKEN_SECONDS = sum(SCALE_TICK_MS) / 2000  # the mean: 0.3 s between tokens
AGAINST = "against"  # targets of the gateway built from `--against REV` are named "against …"
SECTIONS = ("throughput", "profile", "growth", "memory", "scale", "writes", "tokens")


@dataclass(frozen=True)
class Mode:
    """How much of everything a run does."""

    name: str
    concurrencies: tuple[int, ...]
    duration: float  # seconds measured per load point
    warmup: float  # seconds not counted before each point
    repeats: int  # runs per point; the one with the median rps is kept
    scale_streams: tuple[int, ...]
    scale_tokens: int  # tokens per long stream, one every 100-500 ms (fewer, slower, at 500 ms)
    growth_depths: tuple[int, ...]
    growth_requests: int  # requests measured at each depth
    rss_checkpoints: tuple[int, int]  # requests served before each RSS reading
    profile_seconds: float = 0.0
    cross_check: bool = False  # wrk and the gevent backend, for comparison
    write_checkpoints: tuple[int, ...] = (0, 1000)  # stored responses before each timed batch


MODES = {
    "smoke": Mode("smoke", (1, 8), 0.5, 0.2, 1, (20,), 4, (1, 3), 3, (100, 300)),
    "quick": Mode(
        "quick",
        CONCURRENCIES,
        duration=2.5,
        warmup=0.5,
        repeats=3,
        scale_streams=(100, 1000, 5000),
        scale_tokens=150,
        growth_depths=(1, 10, 100, 500),
        growth_requests=20,
        rss_checkpoints=(5_000, 20_000),
        profile_seconds=8,
        cross_check=True,
        write_checkpoints=(0, 50_000),
    ),
    "full": Mode(
        "full",
        CONCURRENCIES,
        duration=8.0,
        warmup=2.0,
        repeats=3,
        scale_streams=(100, 1000, 5000),
        scale_tokens=150,
        growth_depths=(1, 10, 100, 500),
        growth_requests=50,
        rss_checkpoints=(10_000, 100_000),
        profile_seconds=20,
        cross_check=True,
        write_checkpoints=(0, 50_000, 200_000),
    ),
}


@dataclass(frozen=True)
class Target:
    """One thing to load: where, what body, and what every answer must contain."""

    name: str
    path: str
    body: dict
    expect: str
    stream: bool = False


CHAT_BODY = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
GATEWAY_BODY = {"model": MODEL, "input": PROMPT}
TARGETS = {
    "direct": Target("direct", "/v1/chat/completions", CHAT_BODY, '"choices"'),
    "direct stream": Target(
        "direct stream", "/v1/chat/completions", {**CHAT_BODY, "stream": True}, "[DONE]", True
    ),
    "floor": Target("floor", "/v1/responses", GATEWAY_BODY, '"output"'),
    "gateway store": Target(
        "gateway store", "/v1/responses", {**GATEWAY_BODY, "store": True}, '"completed"'
    ),
    "gateway no-store": Target(
        "gateway no-store", "/v1/responses", {**GATEWAY_BODY, "store": False}, '"completed"'
    ),
    "gateway stream": Target(
        "gateway stream",
        "/v1/responses",
        {**GATEWAY_BODY, "store": True, "stream": True},
        GATEWAY_STREAM_DONE,
        True,
    ),
}


def load(
    service: Service,
    target: Target,
    concurrency: int,
    *,
    duration: float,
    warmup: float = 0.0,
    requests: int = 10_000_000,
    ramp: float = 0.0,
    watch: tuple[Service, ...] | list[Service] = (),
) -> dict:
    """Run the load generator once against `service`; add the CPU the services used."""
    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        service.base + target.path,
        "--body",
        json.dumps(target.body),
        "--concurrency",
        str(concurrency),
        "--requests",
        str(requests),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--ramp",
        str(ramp),
        "--expect",
        target.expect,
        "--json",
    ] + (["--stream"] if target.stream else [])
    watched = [service, *watch]
    cpu_before = [s.cpu_seconds() for s in watched]
    workers_before = service.worker_cpu_seconds()
    started = time.perf_counter()
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    result = json.loads(finished.stdout)
    result["wall_s"] = round(wall, 2)
    result["cpu_pct"] = {
        s.name: round(100 * (s.cpu_seconds() - before) / wall, 1)
        for s, before in zip(watched, cpu_before, strict=True)
    }
    result["worker_cpu_pct"] = [
        round(100 * (after - before) / wall)
        for before, after in zip(workers_before, service.worker_cpu_seconds(), strict=False)
    ]
    return result


def median_run(runs: list[dict]) -> dict:
    """The run with the median rps; its errors are those of all the runs, so none hide."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["rps_runs"] = [r["rps"] for r in runs]
    kinds: Counter = Counter()
    for run in runs:
        kinds.update(run["error_kinds"])
    chosen["errors"], chosen["error_kinds"] = sum(kinds.values()), dict(kinds)
    return chosen


def against_targets() -> dict[str, Target]:
    """The gateway's targets again, for the gateway built from another revision."""
    return {
        name.replace("gateway", AGAINST): replace(target, name=name.replace("gateway", AGAINST))
        for name, target in TARGETS.items()
        if name.startswith("gateway")
    }


def throughput(
    mode: Mode,
    backend: Service,
    floor: Service,
    gateway: Service,
    against: Service | None = None,
) -> list[dict]:
    """Every target at every concurrency; repeats go round all targets, so drift hits all alike.

    With `against` (a gateway from another revision), its targets join the
    same rounds: an A/B of a change, interleaved like everything else.
    """
    where = {"direct": backend, "direct stream": backend, "floor": floor}
    targets = dict(TARGETS)
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
                service = where.get(target.name, gateway)
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
            print(report.progress_line(row), flush=True)
    return rows


def cross_check(mode: Mode, workdir: Path, backend: Service, floor: Service) -> dict:
    """The load generator against wrk, and the asyncio backend against gevent's pywsgi."""
    checks: dict = {"loadgen_vs_wrk": [], "backend_servers": []}
    for service, target in ((backend, TARGETS["direct"]), (floor, TARGETS["floor"])):
        ours = load(service, target, 32, duration=mode.duration, warmup=mode.warmup)
        checks["loadgen_vs_wrk"].append(
            {"target": target.name, "tool": "bench.loadgen", **_tool_cost(ours)}
        )
        theirs = run_wrk(service, target, mode.duration)
        if theirs:
            checks["loadgen_vs_wrk"].append({"target": target.name, "tool": "wrk", **theirs})
    gevent_backend = start_backend(workdir, server="gevent", name="backend-gevent")
    try:
        for service, server in ((backend, "asyncio"), (gevent_backend, "gevent pywsgi")):
            for target in (TARGETS["direct"], TARGETS["direct stream"]):
                result = load(service, target, 32, duration=mode.duration, warmup=mode.warmup)
                checks["backend_servers"].append(
                    {"server": server, "target": target.name, **result}
                )
    finally:
        gevent_backend.stop()
    return checks


def _tool_cost(result: dict) -> dict:
    requests = max(result["ok"], 1)
    return {
        "rps": result["rps"],
        "p50": result["latency_ms"]["p50"],
        "p99": result["latency_ms"]["p99"],
        "cpu_us_per_request": round(1e6 * result["loadgen_cpu_s"] / requests, 1),
    }


def run_wrk(service: Service, target: Target, duration: float) -> dict | None:
    """wrk -t1 -c32 with bench/wrk_post.lua; None when wrk is not installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    env = {**os.environ, "WRK_BODY": json.dumps(target.body)}
    command = [wrk, "-t1", "-c32", f"-d{int(duration)}s", "-s", "bench/wrk_post.lua"]
    before = os.times()
    finished = subprocess.run(
        command + [service.base + target.path],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    summary = finished.stdout.splitlines()[-1].split()  # wrk: N requests, E errors, p50=..
    requests = int(summary[1])
    values = dict(part.split("=") for part in summary if "=" in part)
    return {
        "rps": round(requests / duration, 1),
        "p50": float(values["p50"]),
        "p99": float(values["p99"]),
        "cpu_us_per_request": round(1e6 * cpu / max(requests, 1), 1),
    }


PROFILES = (
    ("gateway store", "gateway store (CPU)", False),
    ("gateway store", "gateway store (wall clock, --idle)", True),
    ("gateway stream", "gateway stream (CPU)", False),
)


def profile_gateway(mode: Mode, out: Path, gateway: Service) -> dict:
    """py-spy both gateway workers under load at concurrency 32, JSON and streamed."""
    results = {}
    for target_name, label, idle in PROFILES:
        output = (
            out / f"profile-{label.split(' (')[0].replace(' ', '-')}{'-idle' if idle else ''}.txt"
        )
        loader = threading.Thread(
            target=load,
            args=(gateway, TARGETS[target_name], 32),
            kwargs={"duration": mode.profile_seconds + 2, "ramp": 32 * RAMP_PER_CONNECTION},
        )
        loader.start()
        time.sleep(1.0)
        recorded = profile.record(gateway.children(), mode.profile_seconds, output, idle=idle)
        loader.join()
        if recorded is None:
            return {"skipped": "py-spy is not installed"}
        results[label] = {"file": output.name, **profile.summarize(output)}
    return results


def scale(mode: Mode, workdir: Path, backend: Service, against: Path | None = None) -> list[dict]:
    """Hold N long streams at once on a fresh gateway each; memory per stream, errors, CPU.

    The floor app relays the same streams at the middle N and at the largest:
    the stack's own CPU per token, next to the gateway's, and whether the
    stack alone can hold the largest N at that token rate. The largest N runs
    once more with a token every 500 ms, the slow end of the range, for both.
    With `against` (another revision's tree), its gateway holds the largest N
    too, right after this one's.
    """
    middle, largest = mode.scale_streams[len(mode.scale_streams) // 2], mode.scale_streams[-1]
    runs = []
    for count in mode.scale_streams:
        runs.append(("gateway", "wsgi:app", count, SCALE_TICK_MS, ROOT))
        if count == largest and against is not None:
            runs.append((AGAINST, "wsgi:app", count, SCALE_TICK_MS, against))
        if count in (middle, largest):
            runs.append(("floor", "bench.floor_app:app", count, SCALE_TICK_MS, ROOT))
    for name, app in (("gateway", "wsgi:app"), ("floor", "bench.floor_app:app")):
        runs.append((name, app, largest, SLOW_TICK_MS, ROOT))
    rows = []
    for name, app, count, tick_ms, root in runs:
        rows.append(_hold_streams(mode, workdir, backend, name, app, count, tick_ms, root))
        print(report.scale_line(rows[-1]), flush=True)
    return rows


def _hold_streams(
    mode: Mode,
    workdir: Path,
    backend: Service,
    name: str,
    app: str,
    count: int,
    tick_ms: tuple[int, int],
    root: Path = ROOT,
) -> dict:
    token_seconds = sum(tick_ms) / 2000
    # As many tokens as last the same time as the full range's streams do.
    tokens = max(1, round(mode.scale_tokens * SCALE_TOKEN_SECONDS / token_seconds))
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
        workdir,
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


def growth(mode: Mode, gateway: Service, backend: Service) -> list[dict]:
    """Continue chains and conversations of growing length: latency, queries, rows."""
    rows = []
    tip, built = None, 0
    for depth in mode.growth_depths:
        while built < depth:
            body = {"model": MODEL, "input": f"turn {built}", "previous_response_id": tip}
            status, answer = http_call(gateway.port, "POST", "/v1/responses", body)
            if status != 200:
                raise RuntimeError(f"building the chain failed at {built}: {answer}")
            tip, built = answer["id"], built + 1
        chain_body = {**GATEWAY_BODY, "previous_response_id": tip}
        rows.append(_growth_row(mode, gateway, backend, "chain", depth, chain_body))
        conversation = _conversation_with(gateway, 2 * depth)
        conversation_body = {**GATEWAY_BODY, "conversation": conversation}
        rows.append(_growth_row(mode, gateway, backend, "conversation", depth, conversation_body))
        print(report.growth_line(rows[-2]), "|", report.growth_line(rows[-1]), flush=True)
    return rows


def _growth_row(
    mode: Mode, gateway: Service, backend: Service, kind: str, depth: int, body: dict
) -> dict:
    target = Target(kind, "/v1/responses", body, '"completed"')
    result = load(gateway, target, 1, duration=60, requests=mode.growth_requests)
    history = history_load(gateway, body)
    return {
        "kind": kind,
        "depth": depth,
        "items": history["rows"],
        "messages_sent": backend_stats(backend)["last_messages"],
        "latency_ms": result["latency_ms"],
        "errors": result["errors"],
        **history,
    }


def _conversation_with(gateway: Service, item_count: int) -> str:
    """A conversation holding `item_count` user/assistant messages."""
    items = [
        {"type": "message", "role": ("user", "assistant")[n % 2], "content": f"item {n}"}
        for n in range(item_count)
    ]
    status, conversation = http_call(gateway.port, "POST", "/v1/conversations", {})
    if status != 200:
        raise RuntimeError(f"could not create a conversation: {conversation}")
    for start in range(0, item_count, CONVERSATION_BATCH):
        batch = {"items": items[start : start + CONVERSATION_BATCH]}
        path = f"/v1/conversations/{conversation['id']}/items"
        status, answer = http_call(gateway.port, "POST", path, batch)
        if status != 200:
            raise RuntimeError(f"could not add conversation items: {answer}")
    return conversation["id"]


def history_load(gateway: Service, body: dict) -> dict:
    """Load a request's history with the gateway's own code, counting SQL statements."""
    from app.services.inputs import history_for
    from app.store import db

    _bind_store(gateway)
    statements: list[str] = []
    with db.connection_context():
        db.connection().set_trace_callback(statements.append)
        started = time.perf_counter()
        items = history_for(body)
        elapsed = time.perf_counter() - started
        db.connection().set_trace_callback(None)
    return {"rows": len(items), "queries": len(statements), "load_ms": round(elapsed * 1000, 2)}


_bound_store: list[str] = []


def _bind_store(gateway: Service) -> None:
    """Bind the gateway's store module, in this process, to `gateway`'s SQLite file."""
    from app.config import load_settings
    from app.store import db, open_database

    path = gateway.env["SESSION_STORE_DSN"]
    if _bound_store != [path]:
        database, _ = open_database(load_settings({"store_dsn": path}, environ={}))
        db.initialize(database)
        _bound_store[:] = [path]


def memory_over_time(mode: Mode, workdir: Path, backend: Service) -> dict:
    """Workers' RSS after the first and the second checkpoint of stored responses."""
    gateway = start_gunicorn("gateway-rss", "wsgi:app", workdir, backend)
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
        return {
            "readings": readings,
            "growth_pct": round(growth_pct, 1),
            "database": database_size(Path(gateway.env["SESSION_STORE_DSN"])),
        }
    finally:
        gateway.stop()


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


def machine(open_files_limit: int) -> dict:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "open_files_limit": open_files_limit,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_const", const="quick", dest="mode")
    group.add_argument("--smoke", action="store_const", const="smoke", dest="mode")
    parser.add_argument("--out", type=Path, help="directory for report.md and results.json")
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        default=set(SECTIONS),
        help=f"comma-separated sections to run ({','.join(SECTIONS)}); the report needs all",
    )
    parser.add_argument(
        "--against",
        metavar="REV",
        help="also run the gateway of git revision REV (an A/B): in the throughput rounds, "
        "and with the largest number of long streams",
    )
    args = parser.parse_args(argv)
    if not args.only <= set(SECTIONS):
        parser.error(f"--only takes some of {','.join(SECTIONS)}")
    mode = MODES[args.mode or "full"]
    out = args.out or ROOT / "bench" / "results" / mode.name
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results: dict = {"mode": asdict(mode), "machine": machine(raise_open_files_limit())}
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as temp:
        workdir = Path(temp)
        backend = start_backend(workdir)
        services = [backend]
        try:
            floor = start_gunicorn("floor", "bench.floor_app:app", workdir, backend)
            services.append(floor)
            gateway = start_gunicorn("gateway", "wsgi:app", workdir, backend)
            services.append(gateway)
            against, tree = None, None
            if args.against:
                tree = export_revision(args.against, workdir)
                results["against"] = {"revision": args.against, "tree": tree.name[5:]}
            if tree is not None and "throughput" in args.only:
                against = start_gunicorn(AGAINST, "wsgi:app", workdir, backend, root=tree)
                services.append(against)
            if "throughput" in args.only:
                results["throughput"] = throughput(mode, backend, floor, gateway, against)
                results["pool_full_warnings"] = gateway.log_lines(POOL_FULL_WARNING)
                results["gateway_errors_logged"] = gateway.error_lines()
                if mode.cross_check:
                    results["cross_check"] = cross_check(mode, workdir, backend, floor)
            if "profile" in args.only and mode.profile_seconds:
                results["profile"] = profile_gateway(mode, out, gateway)
            if "growth" in args.only:
                results["growth"] = growth(mode, gateway, backend)
            if "memory" in args.only:
                results["memory"] = memory_over_time(mode, workdir, backend)
            if "scale" in args.only:
                results["scale"] = scale(mode, workdir, backend, tree)
            if "writes" in args.only:
                results["writes"] = writes.store_writes(workdir, mode.write_checkpoints)
                _bound_store.clear()  # the store module is bound to the last writes file now
                for row in results["writes"]:
                    print(report.writes_line(row), flush=True)
            if "tokens" in args.only:
                results["tokens"] = per_token.per_token()
        finally:
            for service in reversed(services):
                service.stop()
    results["elapsed_s"] = round(time.time() - started, 1)
    if args.only != set(SECTIONS):
        shown = args.only | ({"against"} if args.against else set())
        print(json.dumps({key: results[key] for key in results if key in shown}, indent=1))
        if "against" in results and "throughput" in results:
            print(report.against_section(results))
        return
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "report.md").write_text(report.render(results))
    print(f"\nreport: {out / 'report.md'} ({results['elapsed_s']:.0f}s)")


if __name__ == "__main__":
    main()
