"""A fast fake Chat Completions server for benchmarks (loopback only).

It answers `POST /v1/chat/completions` with a fixed short answer, as one
JSON body or as SSE chunks (`Transfer-Encoding: chunked`, keep-alive), and
`GET /v1/models`; `GET /stats` reports what it saw (connections, requests,
streams open now and at most, messages in the last and largest request), `GET
/stats?reset` also starts the peaks afresh.

Streams are paced by the model name: `bench` answers at once (or with
`--token-delay` seconds between tokens); `bench-tick-MIN-MAX-COUNT` sends
COUNT tokens, each MIN..MAX milliseconds after the one before.

Two servers share the answers: a raw asyncio protocol (the default, and the
faster one here: see docs/BENCHMARKS.md) and gevent's pywsgi
(`--server gevent`), kept to show the difference.

    python -m bench.fast_backend --port 9000 [--server asyncio|gevent] [--token-delay 0.01]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass

ANSWER_TOKENS = ["Hello", "!", " This", " is", " the", " benchmark", " backend", "."]
USAGE = {"prompt_tokens": 12, "completion_tokens": len(ANSWER_TOKENS), "total_tokens": 20}
CHAT_PATH = "/v1/chat/completions"
TICK_PREFIX = "bench-tick-"
MAX_HEAD_BYTES = 64 * 1024
JSON_HEAD = (
    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
)
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def completion_body() -> bytes:
    """The one non-streaming answer."""
    return _dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(ANSWER_TOKENS)},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


def _chunk(delta: dict, finish_reason: str | None = None, usage: dict | None = None) -> bytes:
    choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0}
    body.update(model="bench", choices=choices)
    if usage:
        body["usage"] = usage
    return b"data: " + _dumps(body) + b"\n\n"


def stream_events(tokens: list[str]) -> tuple[bytes, list[bytes], bytes]:
    """SSE payloads of a streamed answer: the opening, one per token, and the closing."""
    opening = _chunk({"role": "assistant", "content": ""})
    per_token = [_chunk({"content": token}) for token in tokens]
    closing = _chunk({}, "stop") + _chunk({}, usage=USAGE) + b"data: [DONE]\n\n"
    return opening, per_token, closing


def http_chunk(payload: bytes) -> bytes:
    """Frame `payload` as one chunk of a chunked HTTP body."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


LAST_CHUNK = b"0\r\n\r\n"


def json_response(body: bytes, status: str = "200 OK") -> bytes:
    return JSON_HEAD.format(status=status, length=len(body)).encode() + body


def pacing(model: str, token_delay: float) -> tuple[list[str], float, float] | None:
    """Tokens and delay range (seconds) for a paced stream, or None to answer at once."""
    if model.startswith(TICK_PREFIX):
        low, high, count = (int(part) for part in model[len(TICK_PREFIX) :].split("-"))
        tokens = [f" tok{index}" for index in range(count)]
        return tokens, low / 1000, high / 1000
    if token_delay > 0:
        return ANSWER_TOKENS, token_delay, token_delay
    return None


@dataclass
class Stats:
    """What the backend saw; read over `GET /stats`."""

    connections: int = 0
    requests: int = 0
    streams: int = 0
    streams_open: int = 0
    streams_peak: int = 0
    streams_aborted: int = 0
    last_messages: int = 0
    max_messages: int = 0
    last_body_bytes: int = 0

    def request(self, body: bytes) -> tuple[bool, str]:
        """Count a chat request; return (stream?, model)."""
        data = json.loads(body)
        messages = len(data.get("messages") or ())
        self.requests += 1
        self.last_messages, self.last_body_bytes = messages, len(body)
        self.max_messages = max(self.max_messages, messages)
        return bool(data.get("stream")), str(data.get("model", ""))

    def stream_opened(self) -> None:
        self.streams += 1
        self.streams_open += 1
        self.streams_peak = max(self.streams_peak, self.streams_open)

    def report(self, reset: bool) -> bytes:
        body = _dumps(asdict(self))
        if reset:
            self.streams_peak = self.streams_open
            self.max_messages = 0
        return body


COMPLETION = json_response(completion_body())
NOT_FOUND = json_response(_dumps({"error": {"message": "not found"}}), "404 Not Found")
MODELS = json_response(_dumps({"object": "list", "data": [{"id": "bench", "object": "model"}]}))
OPENING, TOKENS, CLOSING = stream_events(ANSWER_TOKENS)
WHOLE_STREAM = STREAM_HEAD + http_chunk(OPENING + b"".join(TOKENS) + CLOSING) + LAST_CHUNK


def serve_asyncio(host: str, port: int, token_delay: float) -> None:
    """Serve with a raw asyncio protocol: no HTTP library on the hot path."""
    import asyncio

    stats = Stats()

    class Connection(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buffer = bytearray()
            self.pacer: asyncio.Task | None = None
            stats.connections += 1

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            self.answer_pending()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.pacer is not None and not self.pacer.done():
                self.pacer.cancel()
                stats.streams_aborted += 1

        def answer_pending(self) -> None:
            while self.pacer is None:
                request = self.next_request()
                if request is None:
                    return
                self.answer(*request)

        def next_request(self) -> tuple[bytes, bytes] | None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    self.transport.close()
                return None
            lines = bytes(self.buffer[:end]).split(b"\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return None
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            return lines[0], body

        def answer(self, request_line: bytes, body: bytes) -> None:
            method, _, rest = request_line.partition(b" ")
            path = rest.partition(b" ")[0].decode()
            if method == b"POST" and path == CHAT_PATH:
                stream, model = stats.request(body)
                if not stream:
                    self.transport.write(COMPLETION)
                    return
                stats.stream_opened()
                paced = pacing(model, token_delay)
                if paced is None:
                    self.transport.write(WHOLE_STREAM)
                    stats.streams_open -= 1
                    return
                self.pacer = asyncio.ensure_future(self.paced_stream(*paced))
            elif path.startswith("/stats"):
                self.transport.write(json_response(stats.report("reset" in path)))
            elif path == "/v1/models":
                self.transport.write(MODELS)
            else:
                self.transport.write(NOT_FOUND)

        async def paced_stream(self, tokens: list[str], low: float, high: float) -> None:
            opening, per_token, closing = stream_events(tokens)
            try:
                self.transport.write(STREAM_HEAD + http_chunk(opening))
                for payload in per_token:
                    await asyncio.sleep(random.uniform(low, high))
                    self.transport.write(http_chunk(payload))
                self.transport.write(http_chunk(closing) + LAST_CHUNK)
            finally:
                stats.streams_open -= 1
            self.pacer = None
            self.answer_pending()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Connection, host, port, backlog=4096, reuse_address=True)
        print(f"fast_backend asyncio listening on http://{host}:{port}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def serve_gevent(host: str, port: int, token_delay: float) -> None:
    """Serve the same answers with gevent's pywsgi (slower here; kept for comparison)."""
    import socket

    import gevent
    from gevent.pywsgi import WSGIServer

    class NoDelayServer(WSGIServer):
        # pywsgi writes head and body apart: without TCP_NODELAY every answer
        # waits ~40 ms for the client's delayed ACK.
        def handle(self, sock, address):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().handle(sock, address)

    stats = Stats()
    completion = COMPLETION.partition(b"\r\n\r\n")[2]

    def paced(tokens: list[str], low: float, high: float):
        opening, per_token, closing = stream_events(tokens)
        try:
            yield opening
            for payload in per_token:
                gevent.sleep(random.uniform(low, high))
                yield payload
            yield closing
        finally:
            stats.streams_open -= 1

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if environ["REQUEST_METHOD"] == "POST" and path == CHAT_PATH:
            stream, model = stats.request(environ["wsgi.input"].read())
            if not stream:
                start_response("200 OK", [("Content-Type", "application/json")])
                return [completion]
            stats.stream_opened()
            start_response("200 OK", [("Content-Type", "text/event-stream")])
            plan = pacing(model, token_delay) or (ANSWER_TOKENS, 0.0, 0.0)
            return paced(*plan)
        if path.startswith("/stats"):
            start_response("200 OK", [("Content-Type", "application/json")])
            return [stats.report("reset" in environ.get("QUERY_STRING", ""))]
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b"{}"]

    print(f"fast_backend gevent listening on http://{host}:{port}", flush=True)
    NoDelayServer((host, port), app, log=None, backlog=4096).serve_forever()


def raise_open_files_limit() -> int:
    """Raise the soft open-file limit to the hard one; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--server", choices=("asyncio", "gevent"), default="asyncio")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds per token")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("fast_backend serves loopback only")
    raise_open_files_limit()
    serve = serve_asyncio if args.server == "asyncio" else serve_gevent
    serve(args.host, args.port, args.token_delay)


if __name__ == "__main__":
    main()
