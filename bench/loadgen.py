"""A closed-loop HTTP/1.1 load generator: keep-alive, bounded in requests and time.

`concurrency` connections each send one POST, wait for the whole answer
(Content-Length or chunked, so SSE streams too), and send the next, until
`requests` have been sent or `duration` seconds have passed. It reports
requests per second, latency and time to first byte (p50/p90/p99), and
errors: a status other than 200, an answer without the `expect` marker
(an incomplete stream), a dropped or refused connection, or no answer
before the deadline. Answers that began during `warmup` are not counted.

Raw asyncio protocols, no HTTP library: one core drives well over 5k
requests/s of short answers here (see docs/BENCHMARKS.md).

    python -m bench.loadgen http://127.0.0.1:8080/v1/responses \
        --body '{"model": "m", "input": "hi"}' --concurrency 32 --duration 10 \
        --requests 100000 [--expect response.completed] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEFAULT_KEY = "sk-bench-0123456789abcdef"
GRACE_SECONDS = 30.0


class ResponseReader(asyncio.Protocol):
    """One keep-alive connection: hands each complete HTTP response to a waiting future."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.first_byte = 0.0
        self.closed = False
        self.transport: asyncio.Transport | None = None
        self._reset()

    def _reset(self) -> None:
        self.head_end = -1
        self.status = 0
        self.length = -1  # -1: chunked
        self.position = 0  # where chunk parsing goes on
        self.body = bytearray()
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.first_byte = 0.0
        self.transport.write(request)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        if not self.first_byte:
            self.first_byte = time.perf_counter()
        self.buffer += data
        self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed mid-response"))

    def _parse(self) -> None:
        if self.head_end < 0 and not self._parse_head():
            return
        done = self._parse_length() if self.length >= 0 else self._parse_chunks()
        if done and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(
                (self.status, self.first_byte, bytes(self.body), self.keep_alive)
            )
            self._reset()

    def _parse_head(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).lower()
        del self.buffer[: end + 4]
        self.head_end = end
        self.status = int(head[9:12])
        self.length = -1 if b"transfer-encoding: chunked" in head else 0
        marker = head.find(b"content-length:")
        if marker >= 0:
            line_end = head.find(b"\r\n", marker)
            self.length = int(head[marker + 15 : line_end if line_end >= 0 else None])
        self.keep_alive = b"connection: close" not in head
        return True

    def _parse_length(self) -> bool:
        if len(self.buffer) < self.length:
            return False
        self.body = self.buffer[: self.length]
        del self.buffer[: self.length]
        return True

    def _parse_chunks(self) -> bool:
        buffer = self.buffer
        while True:
            line_end = buffer.find(b"\r\n", self.position)
            if line_end < 0:
                return False
            size = int(buffer[self.position : line_end].split(b";")[0], 16)
            start = line_end + 2
            if len(buffer) < start + size + 2:
                return False
            if size == 0:
                del buffer[: start + 2]
                self.position = 0
                return True
            self.body += buffer[start : start + size]
            self.position = start + size + 2
            if self.position > 65536:  # drop what was read, keep parsing positions small
                del buffer[: self.position]
                self.position = 0


@dataclass
class Plan:
    """What to send, how often, for how long."""

    host: str
    port: int
    request: bytes
    concurrency: int
    requests: int
    duration: float
    warmup: float = 0.0
    ramp: float = 0.0
    expect: bytes = b""


@dataclass
class Tally:
    """Measurements of one run."""

    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    first_bytes: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    counted_from: float = 0.0
    last_done: float = 0.0


def build_request(url: str, body: bytes, stream: bool, key: str = DEFAULT_KEY) -> bytes:
    parts = urlsplit(url)
    head = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        "Content-Type: application/json",
        f"Authorization: Bearer {key}",
        f"Content-Length: {len(body)}",
    ]
    if stream:
        head.append("Accept: text/event-stream")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def error_kind(status: int, body: bytes) -> str:
    """`HTTP 503 store_unavailable`: the status, and the code of an OpenAI error body."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    return f"HTTP {status} {code}" if isinstance(code, str) else f"HTTP {status}"


async def _client(plan: Plan, tally: Tally, index: int, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    if plan.ramp:
        await asyncio.sleep(plan.ramp * index / plan.concurrency)
    reader: ResponseReader | None = None
    while tally.sent < plan.requests and time.perf_counter() < deadline:
        # Counted before the connection is awaited: clients connecting at once
        # would each still see room for one more, and send more than asked.
        tally.sent += 1
        if reader is None or reader.closed:
            try:
                _, reader = await loop.create_connection(ResponseReader, plan.host, plan.port)
            except OSError as exc:
                tally.sent -= 1
                tally.errors[f"connect: {exc.__class__.__name__}"] += 1
                await asyncio.sleep(0.05)
                continue
        started = time.perf_counter()
        try:
            status, first_byte, body, keep_alive = await reader.send(plan.request)
        except ConnectionError:
            tally.errors["connection closed"] += 1
            reader = None
            continue
        done = time.perf_counter()
        if status != 200:
            tally.errors[error_kind(status, body)] += 1
        elif plan.expect and plan.expect not in body:
            tally.errors["incomplete body"] += 1
        elif started >= tally.counted_from:
            tally.latencies.append(done - started)
            tally.first_bytes.append(first_byte - started)
            tally.last_done = done
        if not keep_alive:
            reader.transport.close()
            reader = None
    if reader is not None:
        reader.transport.close()


async def run_plan(plan: Plan) -> Tally:
    """Run `plan` to its end (requests sent or time out) and return what was measured."""
    start = time.perf_counter()
    tally = Tally(counted_from=start + plan.warmup)
    deadline = start + plan.warmup + plan.duration
    clients = [
        asyncio.ensure_future(_client(plan, tally, index, deadline))
        for index in range(plan.concurrency)
    ]
    _, pending = await asyncio.wait(clients, timeout=plan.warmup + plan.duration + GRACE_SECONDS)
    for client in pending:
        client.cancel()
    if pending:
        tally.errors["no answer before the deadline"] += len(pending)
        await asyncio.wait(pending)
    return tally


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/max of seconds, in milliseconds."""
    if not values:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 3)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1] * 1000, 3)}


def summarize(tally: Tally, cpu_seconds: float) -> dict:
    """The run's figures as a JSON-ready mapping."""
    ok = len(tally.latencies)
    window = max(tally.last_done - tally.counted_from, 1e-9)
    return {
        "ok": ok,
        "sent": tally.sent,
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors),
        "rps": round(ok / window, 1) if ok else 0.0,
        "latency_ms": percentiles(tally.latencies),
        "ttfb_ms": percentiles(tally.first_bytes),
        "loadgen_cpu_s": round(cpu_seconds, 3),
    }


def measure(plan: Plan) -> dict:
    """Run `plan` in a fresh event loop; return its summary."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    tally = asyncio.run(run_plan(plan))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return summarize(tally, cpu)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--body", default="{}", help="JSON body of every request")
    parser.add_argument("--stream", action="store_true", help="ask for text/event-stream")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=10_000, help="at most this many sent")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds after warm-up")
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds not counted")
    parser.add_argument("--ramp", type=float, default=0.0, help="seconds to open all connections")
    parser.add_argument("--expect", default="", help="marker every answer body must contain")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--key", default=DEFAULT_KEY, help="the bearer key every request sends")
    args = parser.parse_args(argv)
    parts = urlsplit(args.url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("loadgen drives loopback addresses only")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    plan = Plan(
        host=parts.hostname,
        port=parts.port or 80,
        request=build_request(args.url, args.body.encode(), args.stream, args.key),
        concurrency=args.concurrency,
        requests=args.requests,
        duration=args.duration,
        warmup=args.warmup,
        ramp=args.ramp,
        expect=args.expect.encode(),
    )
    result = measure(plan)
    if args.json:
        print(json.dumps(result))
        return
    lat, ttfb = result["latency_ms"], result["ttfb_ms"]
    print(
        f"{result['rps']:.0f} rps  ok={result['ok']} errors={result['errors']} "
        f"latency p50={lat['p50']} p90={lat['p90']} p99={lat['p99']} ms  "
        f"ttfb p50={ttfb['p50']} ms  loadgen cpu={result['loadgen_cpu_s']}s"
    )
    for kind, count in result["error_kinds"].items():
        print(f"  {count} x {kind}")


if __name__ == "__main__":
    main()
