"""What a run loads (`Target`, `TARGETS`) and `load`, one run of the load generator against it.

The targets are the answers the sections time: the fast backend's own
(direct), the floor app's, and the gateway's stored, unstored and
streamed answers. `load` runs `bench.loadgen` in a child process and adds
the CPU each watched service used meanwhile.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass

from bench.services import ROOT, Service

MODEL = "bench"
PROMPT = "Say hello."
GATEWAY_STREAM_DONE = "response.completed"
AGAINST = "against"  # targets of the gateway built from `--against REV` are named "against …"
# Connections are opened a few ms apart: in a burst, the gevent worker that wakes
# first accepts them all, and one core does the work of two for the whole run.
RAMP_PER_CONNECTION = 0.004


@dataclass(frozen=True)
class Target:
    """One thing to load: where, what body, and what every answer must contain."""

    name: str
    path: str
    body: dict
    expect: str
    stream: bool = False
    key: str | None = None  # the bearer key sent (None: the load generator's own)


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
    command = (
        [
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
        ]
        + (["--stream"] if target.stream else [])
        + (["--key", target.key] if target.key else [])
    )
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
