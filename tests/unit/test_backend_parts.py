"""The pure parts of the backend layer: the SSE reader and the circuit breaker.

`iter_sse_data` is fed by a scripted stand-in for urllib3's raw response
(only `read1` is used); `CircuitBreaker` runs on a hand-moved clock.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from app.backends.breaker import CircuitBreaker
from app.backends.sse import SSEError, iter_sse_data
from app.errors import BackendUnavailable

MAX_READS = 10_000


class ScriptedRaw:
    """Answers each `read1` with the next scripted chunk, then b"" (end of stream)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = iter(chunks)
        self.reads = 0

    def read1(self, size: int) -> bytes:
        self.reads += 1
        assert self.reads <= MAX_READS, "the reader does not stop"
        chunk = next(self.chunks, b"")
        assert len(chunk) <= size
        return chunk


def data_of(*chunks: bytes, **kwargs) -> list[str]:
    return list(iter_sse_data(ScriptedRaw(chunks), **kwargs))


# --- iter_sse_data ------------------------------------------------------------


def test_one_event_per_data_line():
    stream = b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'
    assert data_of(stream) == ['{"a":1}', '{"b":2}']


def test_events_split_across_reads_are_joined():
    chunks = [b"da", b'ta: {"a"', b":1}", b"\n", b'\ndata: {"b"', b":2}\n\n"]
    assert data_of(*chunks) == ['{"a":1}', '{"b":2}']


def test_every_byte_in_its_own_read():
    stream = b'data: {"text":"hello"}\n\ndata: [DONE]\n\n'
    assert data_of(*(stream[i : i + 1] for i in range(len(stream)))) == ['{"text":"hello"}']


def test_crlf_line_endings():
    assert data_of(b'data: {"a":1}\r\n\r\ndata: {"b":2}\r\n\r\ndata: [DONE]\r\n\r\n') == [
        '{"a":1}',
        '{"b":2}',
    ]


def test_crlf_split_between_reads():
    assert data_of(b'data: {"a":1}\r', b"\n\r", b"\n") == ['{"a":1}']


def test_comments_and_other_fields_are_skipped():
    stream = b': keep-alive\n\nevent: message\nid: 7\nretry: 1000\ndata: {"a":1}\n\n:\n\n'
    assert data_of(stream) == ['{"a":1}']


def test_data_without_space_after_colon():
    assert data_of(b'data:{"a":1}\n\n') == ['{"a":1}']


def test_done_stops_reading():
    raw = ScriptedRaw([b"data: one\n\ndata: [DONE]\n\n", b"data: after\n\n", b"data: more\n\n"])
    assert list(iter_sse_data(raw)) == ["one"]
    assert raw.reads == 1


def test_end_of_stream_without_done_ends_quietly():
    assert data_of(b"data: one\n\n", b"data: two\n\n") == ["one", "two"]


def test_multibyte_utf8_split_across_reads():
    encoded = 'data: {"t":"é思"}\n\n'.encode()
    cut = encoded.index("é".encode()) + 1
    assert data_of(encoded[:cut], encoded[cut:]) == ['{"t":"é思"}']


def test_line_longer_than_the_limit_raises():
    with pytest.raises(SSEError):
        data_of(b"data: " + b"x" * 200, max_line=64)


def test_endless_line_raises_after_a_bounded_read():
    raw = ScriptedRaw(b"x" * 1000 for _ in range(MAX_READS))
    with pytest.raises(SSEError):
        list(iter_sse_data(raw, max_line=10_000))
    assert raw.reads <= 12


def test_long_but_allowed_line_passes():
    payload = "y" * 5000
    chunks = [f"data: {payload}".encode()[i : i + 700] for i in range(0, 5006, 700)]
    assert data_of(*chunks, b"\n\n", max_line=6000) == [payload]


# --- CircuitBreaker -----------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, reset_seconds=30.0, clock=clock)


def fail_times(breaker: CircuitBreaker, count: int) -> None:
    for _ in range(count):
        breaker.record_failure()


def test_closed_breaker_lets_requests_through(breaker):
    breaker.check("vllm")
    assert breaker.state() == {"enabled": True, "is_open": False, "consecutive_failures": 0}


def test_failures_below_the_threshold_keep_it_closed(breaker):
    fail_times(breaker, 2)
    breaker.check("vllm")
    assert not breaker.is_open


def test_opens_at_the_threshold_and_fails_fast(breaker):
    fail_times(breaker, 3)
    assert breaker.is_open
    with pytest.raises(BackendUnavailable) as caught:
        breaker.check("vllm")
    error = caught.value
    assert (error.status, error.code) == (503, "circuit_open")
    assert "vllm" in error.message
    assert error.to_dict()["type"] == "server_error"


def test_stays_open_until_the_reset_time(breaker, clock):
    fail_times(breaker, 3)
    clock.advance(29.9)
    with pytest.raises(BackendUnavailable):
        breaker.check("vllm")


def test_half_opens_after_the_reset_time(breaker, clock):
    fail_times(breaker, 3)
    clock.advance(30.0)
    breaker.check("vllm")  # the trial request goes through


def test_half_open_lets_only_one_trial_request_through(breaker, clock):
    fail_times(breaker, 3)
    clock.advance(30.0)
    breaker.check("vllm")
    with pytest.raises(BackendUnavailable):
        breaker.check("vllm")  # others fail fast until the trial reports back


def test_failed_trial_reopens_for_a_full_period(breaker, clock):
    fail_times(breaker, 3)
    clock.advance(31.0)
    breaker.check("vllm")
    breaker.record_failure()
    assert breaker.is_open
    clock.advance(29.0)
    with pytest.raises(BackendUnavailable):
        breaker.check("vllm")


def test_successful_trial_closes_it(breaker, clock):
    fail_times(breaker, 3)
    clock.advance(30.0)
    breaker.check("vllm")
    breaker.record_success()
    assert breaker.state() == {"enabled": True, "is_open": False, "consecutive_failures": 0}
    breaker.record_failure()
    breaker.check("vllm")  # one new failure is not enough to open again


def test_a_success_resets_the_count(breaker):
    fail_times(breaker, 2)
    breaker.record_success()
    fail_times(breaker, 2)
    breaker.check("vllm")


def test_default_clock_is_monotonic_time():
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=60.0)
    breaker.record_failure()
    assert breaker.is_open
