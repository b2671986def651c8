"""The gateway's own work per streamed token, without the stack around it.

In this process, the bytes the fast backend sends for a long answer (one
chunked HTTP chunk per token) go through the gateway's own code: the body
decoder, the SSE parser, the stream translator and the event encoder,
batch by batch as `stream_events` and `_frames` do it. No socket, no
greenlet, no gunicorn: what is left is what the gateway adds per token on
top of a bare relay. It runs twice in the same run: with the gateway's
JSON (`app.compact_json`) and, as the baseline, with the `json`
module's `dumps` and `loads` called as they usually are.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

TOKENS = 150
ROUNDS = 30
REPEATS = 7


def per_token() -> dict[str, Any]:
    """µs of CPU per token for each JSON variant: the median of `REPEATS` timings."""
    wire = _wire()
    results: dict[str, Any] = {"tokens_per_stream": TOKENS, "streams_timed": ROUNDS}
    timings: dict[str, list[float]] = {"gateway": [], "json module": []}
    for _ in range(REPEATS):  # the two variants take turns: the machine drifts
        for name in timings:
            with _json_variant(name):
                timings[name].append(_time_streams(wire))
    for name, values in timings.items():
        results[name] = {"us_per_token": round(statistics.median(values), 2)}
    return results


def _wire() -> list[bytes]:
    from bench.fast_backend import http_chunk, stream_events

    opening, per_token, closing = stream_events([f" tok{n}" for n in range(TOKENS)])
    return [http_chunk(payload) for payload in (opening, *per_token, closing)]


def _time_streams(wire: list[bytes]) -> float:
    started = time.process_time()
    for _ in range(ROUNDS):
        for _frame in _relay(wire):
            pass
    return 1e6 * (time.process_time() - started) / (ROUNDS * TOKENS)


def _relay(wire: list[bytes]) -> Iterator[bytes]:
    """One stream's reads, as `BodyStream.reads` and `stream_events` handle them."""
    from app.backends.body import BodyDecoder
    from app.protocol.chat.stream import ChatTurn
    from app.protocol.responses.events import ResponseEmitter
    from app.protocol.responses.objects import new_response
    from app.protocol.responses.sse import encode_event
    from app.services.response_loop import ResponseLoop

    decoder = BodyDecoder(chunked=True)
    emitter = ResponseEmitter(new_response({"model": "bench"}, "resp_bench", 0))
    loop = ResponseLoop(emitter, ChatTurn(emitter, {}, "reasoning_content"))
    yield b"".join([encode_event(event) for event in loop.start()])
    for data in wire:
        batch = loop.feed(decoder.feed(data), [])
        if batch:
            yield b"".join([encode_event(event) for event in batch])
    closing = loop.finish()
    yield b"".join([encode_event(event) for event in [*closing, loop.terminal_event()]])


@contextmanager
def _json_variant(name: str) -> Iterator[None]:
    """Swap the gateway's JSON functions for the `json` module's, for the baseline."""
    from app import compact_json
    from app.protocol.responses import sse

    if name == "gateway":
        yield
        return
    saved: tuple[Callable, Callable] = (compact_json.loads, sse.dumps)
    compact_json.loads = json.loads
    sse.dumps = lambda value: json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        yield
    finally:
        compact_json.loads, sse.dumps = saved
