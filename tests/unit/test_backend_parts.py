"""The small parts of the backend layer: body framing, the SSE parser, the circuit
breaker, the handle that cuts a call, the pools' connections, the resolver.

`BodyDecoder` and `SSEParser` are fed bytes as a socket would hand them
over, split anywhere; `CircuitBreaker` runs on a hand-moved clock;
`CallHandle` cuts one end of a real socket pair.
"""

from __future__ import annotations

import contextlib
import socket
from types import SimpleNamespace

import pytest

from app.backends.body import BodyDecoder, BodyError
from app.backends.breaker import CircuitBreaker
from app.backends.inflight import TRACKED_POOLS, CallHandle
from app.backends.resolver import Resolver
from app.errors import BackendUnavailable
from app.protocol.chat.sse import SSEError, SSEParser


def data_of(*chunks: bytes, **kwargs) -> list[str]:
    parser = SSEParser(**kwargs)
    return [payload for chunk in chunks for payload in parser.feed(chunk)]


def chunked(*pieces: bytes, trailer: bytes = b"") -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return body + b"0\r\n" + trailer + b"\r\n"


def decoded(decoder: BodyDecoder, data: bytes, step: int) -> bytes:
    return b"".join(decoder.feed(data[i : i + step]) for i in range(0, len(data), step))


# --- SSEParser ----------------------------------------------------------------


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


def test_done_ends_the_stream_and_later_data_is_ignored():
    parser = SSEParser()
    assert parser.feed(b"data: one\n\ndata: [DONE]\n\ndata: after\n\n") == ["one"]
    assert parser.done
    assert parser.feed(b"data: more\n\n") == []


def test_a_partial_line_waits_for_the_rest():
    parser = SSEParser()
    assert parser.feed(b"data: one\n\ndata: tw") == ["one"]
    assert not parser.done
    assert parser.feed(b"o\n\n") == ["two"]


def test_multibyte_utf8_split_across_reads():
    encoded = 'data: {"t":"é思"}\n\n'.encode()
    cut = encoded.index("é".encode()) + 1
    assert data_of(encoded[:cut], encoded[cut:]) == ['{"t":"é思"}']


def test_line_longer_than_the_limit_raises():
    with pytest.raises(SSEError):
        data_of(b"data: " + b"x" * 200, max_line=64)


def test_line_over_the_limit_that_ends_in_the_same_read_raises():
    parser = SSEParser(max_line=64)
    parser.feed(b"data: " + b"x" * 50)
    with pytest.raises(SSEError):
        parser.feed(b"x" * 50 + b"\n\n")


def test_endless_line_raises_after_a_bounded_read():
    parser = SSEParser(max_line=10_000)
    fed = 0
    with pytest.raises(SSEError):
        while fed < 1000:
            parser.feed(b"x" * 1000)
            fed += 1
    assert fed <= 11


def test_long_but_allowed_line_passes():
    payload = "y" * 5000
    chunks = [f"data: {payload}".encode()[i : i + 700] for i in range(0, 5006, 700)]
    assert data_of(*chunks, b"\n\n", max_line=6000) == [payload]


# --- BodyDecoder --------------------------------------------------------------


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_chunked_body_is_decoded_however_it_is_split(step):
    body = chunked(b"data: one\n\n", b"data: two\n\n", b"x" * 300)
    decoder = BodyDecoder(chunked=True)
    assert decoded(decoder, body, step) == b"data: one\n\ndata: two\n\n" + b"x" * 300
    assert decoder.complete


def test_chunk_extensions_and_trailers_are_skipped():
    body = b"5;name=value\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"
    decoder = BodyDecoder(chunked=True)
    assert decoder.feed(body) == b"hello"
    assert decoder.complete


def test_chunked_body_is_not_complete_before_its_last_chunk():
    decoder = BodyDecoder(chunked=True)
    assert decoder.feed(b"5\r\nhello\r\n0\r\n") == b"hello"
    assert not decoder.complete
    assert decoder.feed(b"\r\n") == b""
    assert decoder.complete


def test_bytes_after_the_body_are_not_body():
    decoder = BodyDecoder(chunked=True)
    assert decoder.feed(chunked(b"hi") + b"HTTP/1.1 200 OK\r\n") == b"hi"
    assert decoder.complete


@pytest.mark.parametrize("line", [b"zz\r\n", b"-5\r\n", b"\x00\r\n"])
def test_bad_chunk_size_raises(line):
    with pytest.raises(BodyError):
        BodyDecoder(chunked=True).feed(line)


def test_endless_chunk_size_line_raises():
    with pytest.raises(BodyError):
        BodyDecoder(chunked=True).feed(b"1" * 5000)


def test_close_inside_a_chunked_body_raises():
    decoder = BodyDecoder(chunked=True)
    decoder.feed(b"5\r\nhel")
    with pytest.raises(BodyError):
        decoder.end_of_stream()


def test_sized_body_ends_at_its_length():
    decoder = BodyDecoder(chunked=False, length=8)
    assert decoder.feed(b"data") == b"data"
    assert not decoder.complete
    assert decoder.feed(b": x\n\nextra") == b": x\n"
    assert decoder.complete
    with pytest.raises(BodyError):
        BodyDecoder(chunked=False, length=8).end_of_stream()


def test_body_without_length_ends_at_the_close():
    decoder = BodyDecoder(chunked=False)
    assert decoder.feed(b"data: one\n\n") == b"data: one\n\n"
    assert not decoder.complete
    decoder.end_of_stream()
    assert decoder.complete


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


# --- CallHandle ---------------------------------------------------------------


@pytest.fixture
def socket_pair():
    ours, peer = socket.socketpair()
    peer.settimeout(2)
    yield ours, peer
    ours.close()
    peer.close()


def test_a_cut_shuts_the_attached_socket_down(socket_pair):
    ours, peer = socket_pair
    handle = CallHandle()
    handle.attach(ours)
    handle.cut()
    assert handle.was_cut
    assert peer.recv(1) == b"", "the peer did not see the connection end"


def test_a_cut_before_the_socket_is_known_shuts_it_down_on_attach(socket_pair):
    ours, peer = socket_pair
    handle = CallHandle()
    handle.cut()
    handle.attach(ours)
    assert peer.recv(1) == b""


def test_a_handle_that_is_not_cut_leaves_its_socket_alone(socket_pair):
    ours, peer = socket_pair
    CallHandle().attach(ours)
    ours.sendall(b"x")
    assert peer.recv(1) == b"x"


# --- the backend pools' connections -------------------------------------------


class _CountingSocket:
    """A socket that records each write it is asked to make."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.writes: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.sock.sendall(data)

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


@pytest.fixture
def listener():
    server = socket.create_server(("127.0.0.1", 0))
    yield server
    server.close()


def _connection(listener):
    connection = TRACKED_POOLS["http"].ConnectionCls("127.0.0.1", listener.getsockname()[1])
    connection.connect()
    connection.sock = _CountingSocket(connection.sock)
    return connection, listener.accept()[0]


def test_a_request_with_a_body_leaves_in_one_write(listener):
    connection, peer = _connection(listener)
    with peer:
        connection.request("POST", "/v1/chat/completions", body=b'{"model":"m"}')
        assert len(connection.sock.writes) == 1
        written = connection.sock.writes[0]
        assert written.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        assert written.endswith(b'\r\n\r\n{"model":"m"}')
    connection.close()


def test_a_request_without_a_body_leaves_when_the_answer_is_awaited(listener):
    connection, peer = _connection(listener)
    with peer:
        connection.request("GET", "/v1/models")
        assert connection.sock.writes == []  # held until the answer is awaited
        peer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        assert connection.getresponse().data == b"ok"
        assert peer.recv(4096).startswith(b"GET /v1/models HTTP/1.1\r\n")
        assert len(connection.sock.writes) == 1
    connection.close()


# --- Resolver -----------------------------------------------------------------


class _CountingPool:
    """Stands in for gevent's thread pool: runs the call here and counts it."""

    def __init__(self) -> None:
        self.calls = 0

    def apply(self, function, args=(), kwargs=None):
        self.calls += 1
        return function(*args, **(kwargs or {}))


@pytest.fixture
def resolver():
    return Resolver(hub=SimpleNamespace(threadpool=_CountingPool(), NOT_ERROR=()))


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.5", "::1", b"127.0.0.1"])
def test_numeric_addresses_are_answered_without_the_thread_pool(resolver, host):
    answer = resolver.getaddrinfo(host, 8000, 0, socket.SOCK_STREAM)
    assert answer == socket.getaddrinfo(host, 8000, 0, socket.SOCK_STREAM)
    assert resolver.pool.calls == 0


@pytest.mark.parametrize("host", ["localhost", "1.2.3.4.example", "::1::"])
def test_names_still_go_through_the_thread_pool(resolver, host):
    with contextlib.suppress(OSError):  # only where the lookup goes matters here
        resolver.getaddrinfo(host, 8000, 0, socket.SOCK_STREAM)
    assert resolver.pool.calls == 1
