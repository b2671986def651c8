"""HTTP to one backend: the pooled connections, every call, its timeouts, its errors.

Each backend gets one `requests.Session` per worker. Its `HTTPAdapter`
owns the connection pool: sized from config, TLS checked as requests
checks it (certifi, or the backend's `ca_bundle`), proxies from the
environment read once. The session serves the rare calls (`/models`).

The hot calls go to that adapter's own urllib3 pool directly, for the one
URL the backend's dialect posts to: requests' `Session.send` and
`HTTPAdapter.send` around it (per-call URL, proxy and TLS lookups, a
`Response` with its cookie extraction, the body read in 10 KB pieces)
cost a good share of a stored request's CPU (docs/BENCHMARKS.md). Headers are
passed per call (the pool is shared by greenlets); every call has a
`(connect, read)` timeout; only connection failures (nothing sent yet)
are retried; a redirect is not followed but answered as a 502 that says
where it pointed; the session keeps no cookies (it serves every client).
urllib3's exceptions become the gateway's own here, once.

A streamed reply is read by `BodyStream`, straight off the socket
(app/backends/body.py decodes its HTTP framing). Calls can be cut from
another greenlet through a `CallHandle` (app/backends/inflight.py).

This module and inflight.py are where urllib3's and http.client's private
parts are used (`HTTPResponse._fp`, its `fp`, `will_close`, the socket's
`_sock`; `HTTPConnection.endheaders`/`send`/`getresponse`): setup.cfg
keeps urllib3 below 3, and tests/unit/test_transport.py fails when any of
them changes.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from app.backends.body import BodyDecoder, BodyError
from app.backends.inflight import TRACKED_POOLS, CallCut, CallHandle, tracked
from app.config import BackendSettings
from app.errors import BackendTimeout, BackendUnavailable, BadGateway, GatewayError

CONNECT_RETRIES = 1
MODELS_TIMEOUT = (5.0, 10.0)
# Each read allocates this much and gives back what it did not fill: with
# thousands of streams reading at once, 64 KB reads left the heap larger
# per stream than 8 KB reads do (docs/BENCHMARKS.md). A token's SSE line is
# a few hundred bytes; a longer burst takes more than one read.
READ_SIZE = 8 * 1024
DRAIN_TIMEOUT = 1.0  # after the last event, the rest of a body is a few bytes
MAX_DRAIN_BYTES = 64 * 1024

Failed = Callable[[str], None]  # counts a failure of the backend by its kind

__all__ = ["BodyStream", "CallCut", "CallHandle", "Transport"]


class Transport:
    """The connections to one backend, and its calls."""

    def __init__(self, settings: BackendSettings, url: str, failed: Failed) -> None:
        self.name = settings.name
        self.settings = settings
        self.failed = failed
        self.session = requests.Session()
        # Proxy settings are read once here, not from the environment on
        # every call (a lookup that showed in every request's profile).
        self.proxies = requests.utils.get_environ_proxies(url)
        self.session.trust_env = False
        self.session.verify = settings.ca_bundle or True
        self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self.retries = Retry(
            total=None, connect=CONNECT_RETRIES, read=0, redirect=0, status=0, other=0
        )
        adapter = HTTPAdapter(
            pool_connections=1, pool_maxsize=settings.pool_size, max_retries=self.retries
        )
        adapter.poolmanager.pool_classes_by_scheme = TRACKED_POOLS
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # The pool, and the URL to ask it for, exactly as requests would pick them.
        prepared = self.session.prepare_request(requests.Request("POST", url))
        self.pool = adapter.get_connection_with_tls_context(
            prepared, self.session.verify, proxies=self.proxies
        )
        adapter.cert_verify(self.pool, url, self.session.verify, None)
        self.target = adapter.request_url(prepared, self.proxies)
        self.timeout = urllib3.Timeout(connect=settings.connect_timeout, read=settings.read_timeout)

    def post(
        self,
        data: bytes,
        headers: dict[str, str],
        stream: bool,
        handle: CallHandle | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """POST `data`; a JSON answer comes back read, a stream's body unread.

        With a `handle`, another greenlet can cut the call while it waits for
        the backend; a call cut so is not the backend's failure (`CallCut`).
        A 3xx status is refused here; the caller reads any other status.
        """
        try:
            with tracked(handle):
                response = self.pool.urlopen(
                    "POST",
                    self.target,
                    body=data,
                    headers=headers,
                    retries=self.retries,
                    redirect=False,
                    assert_same_host=False,
                    timeout=self.timeout,
                    preload_content=not stream,
                )
        except (HTTPError, OSError) as exc:
            if handle is not None and handle.was_cut:
                raise CallCut(f"The call to backend '{self.name}' was cut") from exc
            raise self._call_error(exc) from exc
        if 300 <= response.status < 400:
            location = response.headers.get("Location", "elsewhere")
            discard(response)
            raise BadGateway(
                f"Backend '{self.name}' answered HTTP {response.status}: the call was "
                f"redirected to {location}; configure the final URL"
            )
        return response

    def get_json(self, url: str, headers: dict[str, str]) -> Any:
        """GET a JSON document through the session (rare calls: the model list)."""
        response = self.session.get(
            url, headers=headers, timeout=MODELS_TIMEOUT, proxies=self.proxies
        )
        response.raise_for_status()
        return response.json()

    def _call_error(self, exc: Exception) -> GatewayError:
        cause = (exc.reason or exc) if isinstance(exc, MaxRetryError) else exc
        # urllib3's "could not connect at all" derives from its connect timeout.
        if isinstance(cause, ConnectTimeoutError) and not isinstance(cause, NewConnectionError):
            self.failed("connect_timeout")
            return BackendUnavailable(f"Backend '{self.name}' did not accept a connection")
        if isinstance(cause, (ReadTimeoutError, TimeoutError)):
            self.failed("timeout")
            return BackendTimeout(
                f"Backend '{self.name}' did not answer within {self.settings.read_timeout:g}s"
            )
        self.failed("unreachable")
        return BackendUnavailable(f"Backend '{self.name}' is unreachable: {cause}")


def read_text(response: urllib3.BaseHTTPResponse) -> str:
    """The whole body of a reply that will not be used again (an error's)."""
    try:
        return response.data.decode(errors="replace")
    except (HTTPError, OSError):
        return ""
    finally:
        discard(response)


def discard(response: urllib3.BaseHTTPResponse) -> None:
    """Close a reply that will not be read to its end; its connection is not reused."""
    response.close()
    response.release_conn()


class BodyStream:
    """A reply's body, read off the backend's socket by the greenlet that relays it.

    Once the headers are in, the body is read straight from the socket with
    a timeout of `wake_every` seconds: a silent backend wakes the reader,
    which yields None so the relay can send a keep-alive, and reads on.
    That costs no second greenlet, no queue and no urllib3 or http.client
    layers per token. A body read to its end gives its connection back to
    the pool.
    """

    def __init__(self, name: str, raw: urllib3.HTTPResponse, failed: Failed, read_timeout: float):
        self.name = name
        self.raw = raw
        self.failed = failed
        self.read_timeout = read_timeout
        # What http.client read ahead with the headers is taken from its
        # buffer once; after that the socket is read directly.
        self.buffered: Any = raw._fp.fp
        self.sock = _socket_of(self.buffered)
        self.reusable = not raw._fp.will_close
        self.decoder = BodyDecoder(chunked=raw.chunked, length=raw.length_remaining)
        self.closed = False  # by `close()`: a reader woken by it was cut, not failed

    @property
    def complete(self) -> bool:
        """Whether the body ended where its HTTP framing says it ends."""
        return self.decoder.complete

    def reads(self, wake_every: float) -> Iterator[bytes | None]:
        """Yield the body bytes of each read; None after a silent `wake_every`."""
        if self.sock is None:
            raise BadGateway(f"Backend '{self.name}' stream has no connection")
        heard_at = time.monotonic()
        try:
            # Inside: a call cut before its first read finds its socket closed here.
            self.sock.settimeout(min(wake_every, self.read_timeout))
            while not self.decoder.complete:
                try:
                    data = self._read()
                except TimeoutError:
                    if time.monotonic() - heard_at >= self.read_timeout:
                        raise
                    yield None
                    continue
                heard_at = time.monotonic()
                if not data:
                    self.decoder.end_of_stream()
                    return
                body = self.decoder.feed(data)
                if body:
                    yield body
        except TimeoutError as exc:
            self.failed("stream_timeout")
            raise BackendTimeout(
                f"Backend '{self.name}' sent nothing for {self.read_timeout:g}s"
            ) from exc
        except (OSError, BodyError) as exc:
            if self.closed:
                raise CallCut(f"The stream of backend '{self.name}' was cut") from exc
            self.failed("stream_broken")
            raise BadGateway(f"Backend '{self.name}' stream broke off: {exc}") from exc

    def close(self, ended: bool = False) -> None:
        """End the call: hand a finished connection back to the pool, else cut it.

        `ended`: the body's last event came, so its end is a few bytes away
        and is read (briefly) to keep the connection. An abandoned stream
        has its socket shut down: that wakes a reader blocked on it in
        another greenlet, and the backend sees the connection end at once.
        """
        self.closed = True
        if ended and not self.decoder.complete:
            self._drain()
        raw = self.raw
        if self.decoder.complete and self.reusable:
            raw._fp.close()  # http.client's response: its body is over (if not closed yet)
            raw.release_conn()
            return
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
        raw.close()  # closes the connection too: it is not reused
        raw.release_conn()

    def _read(self) -> bytes:
        if self.buffered is not None:
            buffered, self.buffered = self.buffered, None
            try:
                # One raw read at most, and only when nothing is buffered: so
                # a timeout here leaves nothing behind in http.client's buffer.
                return buffered.read1(READ_SIZE)
            finally:
                self._let_go_of_http_client()
        return self.sock.recv(READ_SIZE)  # type: ignore[union-attr]

    def _let_go_of_http_client(self) -> None:
        """Free http.client's response and its 8 KB buffer for the rest of a long stream.

        Only while urllib3's connection still holds the socket: a backend that
        said `Connection: close` handed its socket to that response alone.
        """
        if self.reusable:
            self.raw._fp.close()

    def _drain(self) -> None:
        """Read the end of a body whose last event came (a few bytes), briefly."""
        drained = 0
        with contextlib.suppress(OSError, BodyError):
            self.sock.settimeout(DRAIN_TIMEOUT)  # type: ignore[union-attr]
            while not self.decoder.complete and drained <= MAX_DRAIN_BYTES:
                data = self._read()
                if not data:
                    return
                drained += len(data)
                self.decoder.feed(data)


def _socket_of(buffered: Any) -> socket.socket | None:
    """The socket under http.client's buffered reader (urllib3 lets go of it on a close)."""
    return getattr(getattr(buffered, "raw", None), "_sock", None)
