"""Scriptable fake Chat Completions model server for tests.

This module owns the loopback HTTP server that stands in for an upstream model
server: it speaks ``POST /v1/chat/completions`` (JSON and SSE streaming) and
``GET /v1/models`` and ``POST /v1/embeddings``, records every request it
receives, and answers each chat completion with the next scripted ``Reply``
(text, tool calls, HTTP errors, truncated streams, hangs, slow prefill or raw
bytes). Embeddings are a bag of words hashed into `EMBEDDING_DIMENSIONS`
numbers: texts that share words are near, as a real model's would be.

Streams are sent with ``Transfer-Encoding: chunked`` and ``Connection: close``,
like real model servers, so a ``cut`` stream is a genuinely incomplete HTTP
response rather than a clean end of body.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import select
import socket
import ssl
import sys
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
EMBEDDINGS_PATH = "/v1/embeddings"
EMBEDDING_DIMENSIONS = 64
POLL_INTERVAL = 0.02
DEFAULT_ERROR_BODY = {"error": {"message": "fake error", "type": "server_error", "code": None}}


@dataclass
class Reply:
    """One scripted answer to a chat completion request."""

    kind: str  # "completion", "hang" or "raw"
    content: str | None = None
    reasoning: str | None = None
    reasoning_field: str = "reasoning_content"
    calls: list[dict] = field(default_factory=list)
    finish_reason: str = "stop"
    usage: dict | None = None
    chunk_size: int = 4
    delay: float = 0.0
    model: str | None = None
    cut_after: int | None = None  # stream: chunks sent before the connection is dropped
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)
    seconds: float = 0.0  # hang duration
    first_byte_delay: float = 0.0
    keep_alive: bool = False  # stream: leave the connection open after the last chunk


@dataclass
class Recorded:
    """One HTTP request as the fake backend received it."""

    method: str
    path: str
    headers: dict
    body: bytes
    json: object | None
    client_port: int = 0  # the same port twice: one connection, reused


def text(
    content: str,
    *,
    reasoning: str | None = None,
    reasoning_field: str = "reasoning_content",
    finish_reason: str = "stop",
    usage: dict | None = None,
    chunk_size: int = 4,
    delay: float = 0.0,
    model: str | None = None,
) -> Reply:
    """Answer with assistant text, optionally preceded by reasoning."""
    return Reply(
        kind="completion",
        content=content,
        reasoning=reasoning,
        reasoning_field=reasoning_field,
        finish_reason=finish_reason,
        usage=default_usage(content, reasoning) if usage is None else usage,
        chunk_size=chunk_size,
        delay=delay,
        model=model,
    )


def tool_calls(
    calls: list[dict],
    *,
    content: str | None = None,
    reasoning: str | None = None,
    reasoning_field: str = "reasoning_content",
    usage: dict | None = None,
    chunk_size: int = 4,
    delay: float = 0.0,
    model: str | None = None,
) -> Reply:
    """Answer with function tool calls ({"name", "arguments", optional "id"})."""
    normalized = [_normalize_call(call) for call in calls]
    arguments = " ".join(call["arguments"] for call in normalized)
    return Reply(
        kind="completion",
        content=content,
        reasoning=reasoning,
        reasoning_field=reasoning_field,
        calls=normalized,
        finish_reason="tool_calls",
        usage=default_usage(f"{content or ''} {arguments}", reasoning) if usage is None else usage,
        chunk_size=chunk_size,
        delay=delay,
        model=model,
    )


def error(status: int, body: dict | str | None = None, headers: dict | None = None) -> Reply:
    """Answer with an HTTP error status and a JSON (dict) or text (str) body."""
    if isinstance(body, str):
        return raw(status, body.encode(), "text/plain; charset=utf-8", headers)
    return raw(
        status, json.dumps(DEFAULT_ERROR_BODY if body is None else body).encode(), headers=headers
    )


def cut(content: str = "partial answer", after_chunks: int = 2) -> Reply:
    """Send part of the answer, then drop the connection mid-response."""
    return replace(text(content), cut_after=after_chunks)


def hang(seconds: float) -> Reply:
    """Accept the request, send nothing for `seconds`, then close the connection."""
    return Reply(kind="hang", seconds=seconds)


def slow_first_byte(seconds: float, reply: Reply) -> Reply:
    """Wait `seconds` before sending anything, then serve `reply`."""
    return replace(reply, first_byte_delay=seconds)


def raw(
    status: int,
    body: bytes,
    content_type: str = "application/json",
    headers: dict | None = None,
) -> Reply:
    """Answer with exactly these bytes."""
    return Reply(
        kind="raw", status=status, body=body, content_type=content_type, headers=headers or {}
    )


def length(content: str) -> Reply:
    """Answer with text that stops because the token limit was reached."""
    return text(content, finish_reason="length")


def default_usage(content: str | None, reasoning: str | None = None) -> dict:
    """Usage block counting one token per whitespace-separated word."""
    reasoning_tokens = len((reasoning or "").split())
    completion_tokens = len((content or "").split()) + reasoning_tokens
    return {
        "prompt_tokens": 10,
        "completion_tokens": completion_tokens,
        "total_tokens": 10 + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


def _normalize_call(call: dict) -> dict:
    arguments = call.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    call_id = call.get("id") or f"call_{secrets.token_hex(8)}"
    return {"id": call_id, "name": call["name"], "arguments": arguments}


def _pieces(value: str | None, size: int) -> list[str]:
    value = value or ""
    return [value[i : i + size] for i in range(0, len(value), max(1, size))]


def _deltas(reply: Reply) -> list[dict]:
    """Stream deltas in order: reasoning, content, then each tool call."""
    deltas = [{reply.reasoning_field: p} for p in _pieces(reply.reasoning, reply.chunk_size)]
    deltas += [{"content": p} for p in _pieces(reply.content, reply.chunk_size)]
    for index, call in enumerate(reply.calls):
        deltas.append({"tool_calls": [_tool_call_head(index, call)]})
        third = math.ceil(len(call["arguments"]) / 3)
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            for piece in _pieces(call["arguments"], third)
        ]
    deltas = deltas or [{"content": ""}]
    deltas[0] = {"role": "assistant", **deltas[0]}
    return deltas


def _tool_call_head(index: int, call: dict) -> dict:
    function = {"name": call["name"], "arguments": ""}
    return {"index": index, "id": call["id"], "type": "function", "function": function}


def _message(reply: Reply) -> dict:
    message = {"role": "assistant", "content": reply.content}
    if reply.reasoning is not None:
        message[reply.reasoning_field] = reply.reasoning
    if reply.calls:
        message["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
            for call in reply.calls
        ]
    return message


def _completion(reply: Reply, model: str) -> dict:
    choice = {"index": 0, "message": _message(reply), "logprobs": None}
    return {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{**choice, "finish_reason": reply.finish_reason}],
        "usage": reply.usage,
    }


def _stream_chunks(reply: Reply, model: str, include_usage: bool) -> list[dict]:
    """All chunk objects of a streamed answer (truncated for `cut`)."""
    base = {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict, finish_reason: str | None = None) -> dict:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "choices": [choice]}

    deltas = _deltas(reply)
    if reply.cut_after is not None:
        return [chunk(delta) for delta in deltas[: reply.cut_after]]
    chunks = [chunk(delta) for delta in deltas] + [chunk({}, reply.finish_reason)]
    if include_usage:
        chunks.append({**base, "choices": [], "usage": reply.usage})
    return chunks


class _ClientGone(Exception):
    """The client closed the connection before the reply was complete."""


class _Stopping(Exception):
    """The fake backend is shutting down; abandon the reply."""


class _Handler(BaseHTTPRequestHandler):
    """Serves one connection on behalf of the owning FakeBackend."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        """Stay silent: tests read `FakeBackend.requests` instead."""

    @property
    def backend(self) -> FakeBackend:
        return self.server.backend

    def do_GET(self) -> None:
        """Serve the model list."""
        self._record()
        if self._route() != MODELS_PATH:
            return self._not_found()
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": "fake"}
            for model in self.backend.models
        ]
        self._send_json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        """Serve a chat completion with the next scripted reply."""
        request = self._record().json
        if self._route() == EMBEDDINGS_PATH:
            return self._embed(request)
        if self._route() != CHAT_PATH:
            return self._not_found()
        if not isinstance(request, dict):
            return self._send_json(
                400, _error_body("body must be a JSON object", "invalid_request_error")
            )
        try:
            self._serve(self.backend.next_reply(), request)
        except (_ClientGone, ConnectionError):
            self.close_connection = True
            self.backend.note_disconnect()
        except _Stopping:
            self.close_connection = True

    def do_OTHER(self) -> None:
        """Record and reject any other method."""
        self._record()
        self._not_found()

    do_PUT = do_PATCH = do_DELETE = do_OTHER

    def _route(self) -> str:
        return self.path.split("?", 1)[0]

    def _record(self) -> Recorded:
        body = self._read_body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        headers = {key.lower(): value for key, value in self.headers.items()}
        recorded = Recorded(self.command, self.path, headers, body, parsed, self.client_address[1])
        self.backend.record(recorded)
        return recorded

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # skip trailers
        return b"".join(parts)

    def _not_found(self) -> None:
        message = f"no route for {self.command} {self._route()}"
        self._send_json(404, _error_body(message, "not_found_error"))

    def _serve(self, reply: Reply, request: dict) -> None:
        self._pause(reply.first_byte_delay)
        if reply.kind == "hang":
            self._pause(reply.seconds)
            self.close_connection = True
        elif reply.kind == "raw":
            self._send_bytes(reply.status, reply.body, reply.content_type, reply.headers)
        elif request.get("stream") is True:
            self._stream(reply, request)
        else:
            self._answer(reply, request)

    def _model(self, reply: Reply, request: dict) -> str:
        return reply.model or request.get("model") or self.backend.models[0]

    def _answer(self, reply: Reply, request: dict) -> None:
        body = json.dumps(_completion(reply, self._model(reply, request))).encode()
        if reply.cut_after is None:
            return self._send_bytes(200, body, "application/json")
        self._send_head(200, {"Content-Type": "application/json", "Content-Length": len(body)})
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True

    def _stream(self, reply: Reply, request: dict) -> None:
        options = request.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        chunks = _stream_chunks(reply, self._model(reply, request), include_usage)
        self.close_connection = not reply.keep_alive or reply.cut_after is not None
        headers = {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "Transfer-Encoding": "chunked",
        }
        if self.close_connection:
            headers["Connection"] = "close"
        self._send_head(200, headers)
        for position, chunk in enumerate(chunks):
            if position:
                self._pause(reply.delay)
            self._write_event(json.dumps(chunk))
        if reply.cut_after is None:
            self._write_event("[DONE]")
            self.wfile.write(b"0\r\n\r\n")

    def _write_event(self, data: str) -> None:
        payload = f"data: {data}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))

    def _send_head(self, status: int, headers: dict) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.end_headers()

    def _send_bytes(
        self, status: int, body: bytes, content_type: str, headers: dict | None = None
    ) -> None:
        base = {"Content-Type": content_type, "Content-Length": len(body)}
        self._send_head(status, {**base, **(headers or {})})
        self.wfile.write(body)

    def _embed(self, request: object) -> None:
        if self.backend.take_embedding_failure():
            return self._send_json(500, _error_body("embedding model crashed", "server_error"))
        texts = request.get("input") if isinstance(request, dict) else None
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return self._send_json(
                400, _error_body("input must be strings", "invalid_request_error")
            )
        data = [
            {"object": "embedding", "index": index, "embedding": bag_of_words(text)}
            for index, text in enumerate(texts)
        ]
        usage = {"prompt_tokens": sum(len(t.split()) for t in texts)}
        self._send_json(
            200, {"object": "list", "data": data, "model": request.get("model"), "usage": usage}
        )

    def _send_json(self, status: int, payload: dict) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json")

    def _pause(self, seconds: float) -> None:
        """Sleep, raising _ClientGone if the client hangs up or _Stopping on shutdown."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.backend.stopping.is_set():
                raise _Stopping
            if self._client_closed(min(left, POLL_INTERVAL)):
                raise _ClientGone

    def _client_closed(self, timeout: float) -> bool:
        """Wait up to `timeout` for the client to hang up; True if it did."""
        readable, _, _ = select.select([self.connection], [], [], timeout)
        if not readable:
            return False
        try:
            pending = self.connection.recv(1, socket.MSG_PEEK)
        except ConnectionError:
            return True
        if pending:  # early bytes of a pipelined request, not a hang-up
            time.sleep(timeout)
        return pending == b""


def bag_of_words(text: str) -> list[float]:
    """The fake model's embedding: each word (lowercased) adds to one hashed dimension."""
    vector = [0.0] * EMBEDDING_DIMENSIONS
    for word in re.findall(r"\w+", text.lower()):
        vector[zlib.crc32(word.encode()) % EMBEDDING_DIMENSIONS] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def _error_body(message: str, error_type: str) -> dict:
    return {"error": {"message": message, "type": error_type, "code": None}}


class _Server(ThreadingHTTPServer):
    """Threaded HTTP server that knows its FakeBackend and hides disconnect noise."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], backend: FakeBackend) -> None:
        self.backend = backend
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address) -> None:
        """Ignore connection errors (clients hanging up); report real bugs."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FakeBackend:
    """A loopback Chat Completions server whose answers tests script with `enqueue`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        models: list[str] | None = None,
        tls: tuple[str, str] | None = None,
    ):
        """`tls`: (certificate file, key file) to serve HTTPS instead of HTTP."""
        self.models = list(models or ["fake-model"])
        self.default_reply = text("Hello from the fake backend.")
        self.requests: list[Recorded] = []
        self.disconnects = 0
        self.embedding_failures = 0
        self.stopping = threading.Event()
        self._queue: deque[Reply] = deque()
        self._changed = threading.Condition()
        self._disconnected = threading.Event()
        self._server = _Server((host, port), self)
        self._thread: threading.Thread | None = None
        self.host, self.port = self._server.server_address[:2]
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.base_url = f"{scheme}://{self.host}:{self.port}/v1"
        self.chat_url = f"{self.base_url}/chat/completions"

    def start(self) -> FakeBackend:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(POLL_INTERVAL,),
            name=f"fakebackend-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release hanging replies and close the listening socket."""
        self.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeBackend:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies; each chat completion request consumes the oldest one."""
        with self._changed:
            self._queue.extend(replies)

    def next_reply(self) -> Reply:
        """Pop the next queued reply, or the default reply when the queue is empty."""
        with self._changed:
            return self._queue.popleft() if self._queue else self.default_reply

    def record(self, recorded: Recorded) -> None:
        """Append a received request and wake `wait_for_requests` callers."""
        with self._changed:
            self.requests.append(recorded)
            self._changed.notify_all()

    def chat_requests(self) -> list[dict]:
        """JSON bodies of the chat completion requests received so far."""
        with self._changed:
            return [
                r.json
                for r in self.requests
                if r.method == "POST"
                and r.path.split("?", 1)[0] == CHAT_PATH
                and isinstance(r.json, dict)
            ]

    def embedding_requests(self) -> list[dict]:
        """JSON bodies of the embeddings requests received so far."""
        with self._changed:
            return [
                r.json
                for r in self.requests
                if r.method == "POST" and r.path.split("?", 1)[0] == EMBEDDINGS_PATH
            ]

    def fail_embeddings(self, count: int) -> None:
        """Answer the next `count` embeddings requests with a 500."""
        with self._changed:
            self.embedding_failures = count

    def take_embedding_failure(self) -> bool:
        with self._changed:
            if self.embedding_failures <= 0:
                return False
            self.embedding_failures -= 1
            return True

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """Wait until at least `count` requests were received; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.requests) >= count, timeout)

    def note_disconnect(self) -> None:
        """Count a reply abandoned by its client."""
        with self._changed:
            self.disconnects += 1
        self._disconnected.set()

    def wait_for_disconnect(self, timeout: float) -> bool:
        """Wait until a client abandons a reply; False on timeout."""
        return self._disconnected.wait(timeout)

    def reset(self) -> None:
        """Forget queued replies, recorded requests and disconnects; restore the default reply."""
        with self._changed:
            self._queue.clear()
            self.requests.clear()
            self.disconnects = 0
            self.embedding_failures = 0
            self.default_reply = text("Hello from the fake backend.")
        self._disconnected.clear()
