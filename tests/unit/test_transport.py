"""The private parts of urllib3 and http.client the backends' transport relies on.

app/backends/transport.py reads a streamed reply straight off its socket,
through urllib3's response (`_fp`), http.client's response (`fp`,
`will_close`) and the socket under its buffer (`raw._sock`);
app/backends/inflight.py overrides `HTTPConnection.connect`, `endheaders`,
`send` and `getresponse`; app/compact_json.py calls `json.encoder`'s C
encoder. setup.cfg keeps urllib3 below 3; this test makes a real call on
loopback and fails, naming the attribute, when any of them is gone or
changed its kind.
"""

from __future__ import annotations

import http.client
import io
import json.encoder
import socket
import threading

import urllib3
from urllib3.connection import HTTPConnection

from app.backends.transport import _socket_of


def serve_once(listener: socket.socket) -> None:
    connection, _ = listener.accept()
    with connection:
        connection.recv(65536)
        body = b"data: {}\n\n"
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        )


def test_a_streamed_reply_still_has_the_parts_the_reader_takes():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = threading.Thread(target=serve_once, args=(listener,), daemon=True)
        server.start()
        pool = urllib3.HTTPConnectionPool("127.0.0.1", listener.getsockname()[1])
        reply = pool.urlopen("POST", "/", body=b"{}", preload_content=False)
        try:
            assert isinstance(reply._fp, http.client.HTTPResponse), "urllib3 response._fp"
            assert isinstance(reply._fp.fp, io.BufferedReader), "http.client response.fp"
            assert isinstance(reply._fp.will_close, bool), "http.client response.will_close"
            assert isinstance(_socket_of(reply._fp.fp), socket.socket), "buffer.raw._sock"
            assert reply.chunked is True and reply.length_remaining is None
        finally:
            reply.release_conn()
            pool.close()
        server.join(timeout=5)


def test_the_connection_methods_the_tracking_pools_override_are_there():
    for name in ("connect", "endheaders", "send", "getresponse"):
        assert callable(getattr(HTTPConnection, name, None)), f"HTTPConnection.{name}"


def test_the_json_c_encoder_compact_json_calls_is_there():
    assert json.encoder.c_make_encoder is not None, "json.encoder.c_make_encoder"
    assert urllib3.__version__.split(".")[0] == "2", "setup.cfg pins urllib3 2.x"
