"""Checks of the harness itself: the load generator against wrk, the backend against pywsgi.

At concurrency 32, the load generator and wrk load the backend and the
floor app (the CPU each tool spends per request shows whether the tool is
the limit), and the asyncio backend and a gevent pywsgi one serve the
same answers. Runs with the throughput section, in the modes that ask
for it; its tables follow the throughput tables in the report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import TYPE_CHECKING

from bench.markdown import table
from bench.services import ROOT, Service, start_backend
from bench.targets import TARGETS, Target, load

if TYPE_CHECKING:
    from bench.run import Context


def measure(context: Context) -> dict:
    """The load generator against wrk, and the asyncio backend against gevent's pywsgi."""
    mode, backend = context.mode, context.backend
    checks: dict = {"loadgen_vs_wrk": [], "backend_servers": []}
    for service, target in ((backend, TARGETS["direct"]), (context.floor, TARGETS["floor"])):
        ours = load(service, target, 32, duration=mode.duration, warmup=mode.warmup)
        checks["loadgen_vs_wrk"].append(
            {"target": target.name, "tool": "bench.loadgen", **_tool_cost(ours)}
        )
        theirs = run_wrk(service, target, mode.duration)
        if theirs:
            checks["loadgen_vs_wrk"].append({"target": target.name, "tool": "wrk", **theirs})
    gevent_backend = start_backend(context.workdir, server="gevent", name="backend-gevent")
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


def tables(checks: dict) -> str:
    """Both checks' tables, one after the other."""
    tools = table(
        ["target (c=32)", "tool", "rps", "p50 ms", "p99 ms", "load tool CPU µs/request"],
        [
            [row["target"], row["tool"], f"{row['rps']:.0f}", row["p50"], row["p99"]]
            + [row["cpu_us_per_request"]]
            for row in checks["loadgen_vs_wrk"]
        ],
    )
    servers = table(
        ["backend server", "target (c=32)", "rps", "p50 ms", "p99 ms", "backend CPU"],
        [
            [row["server"], row["target"], f"{row['rps']:.0f}", row["latency_ms"]["p50"]]
            + [row["latency_ms"]["p99"], f"{list(row['cpu_pct'].values())[0]:.0f}%"]
            for row in checks["backend_servers"]
        ],
    )
    return tools + "\n\n" + servers
