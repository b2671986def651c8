"""Model servers that speak Chat Completions: pooled connections, timeouts, routing.

Each backend gets one `requests.Session` per worker, made in `init_app`.
Its `HTTPAdapter` owns the connection pool: sized from config, TLS checked
as requests checks it (certifi, or the backend's `ca_bundle`), proxies from
the environment read once. The session serves the rare calls (`/models`).

Chat calls, the hot path, go to that adapter's own urllib3 pool directly,
with the call's headers and body. requests' `Session.send` and
`HTTPAdapter.send` around it (per-call URL, proxy and TLS lookups, a
`Response` with its cookie extraction, the body read in 10 KB pieces) cost
~0.13 ms a call, ~12% of a stored request's CPU (docs/BENCHMARKS.md).
Headers are passed per call (the pool is shared by greenlets); every call
has a `(connect, read)` timeout; only connection failures (nothing sent
yet) are retried; a redirect is not followed but answered as a 502 that
says where it pointed. urllib3's exceptions become the gateway's own
here. The session keeps no cookies: it is shared by every client's calls.
"""

from __future__ import annotations

import logging
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

from app import compact_json
from app.auth.principal import Principal
from app.backends.breaker import CircuitBreaker
from app.backends.chat_stream import ChatStream
from app.backends.inflight import TRACKED_POOLS, CallCut, CallHandle, tracked
from app.config import BackendSettings, Settings
from app.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadGateway,
    GatewayError,
    NotFound,
    upstream_error,
)
from app.observe import BACKEND_ERRORS, CIRCUIT_OPEN

log = logging.getLogger(__name__)

CONNECT_RETRIES = 1
MODELS_TIMEOUT = (5.0, 10.0)
# Headers of a call that asks for an event stream: it is read off the socket
# as it comes (app/backends/chat_stream.py), so it must not be compressed.
STREAM_HEADERS = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}

__all__ = ["Backend", "Backends", "CallCut", "CallHandle", "ChatStream", "init_app"]


class Backend:
    """One upstream server: its settings, connection pool and circuit breaker."""

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.session = requests.Session()
        # Proxy settings are read once here, not from the environment on
        # every call (that lookup costs ~6% of a request).
        self.proxies = requests.utils.get_environ_proxies(settings.base_url)
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
        self.breaker = CircuitBreaker()
        # The pool, and the URL to ask it for, exactly as requests would pick them.
        chat = self.session.prepare_request(requests.Request("POST", settings.chat_url))
        self.chat_pool = adapter.get_connection_with_tls_context(
            chat, self.session.verify, proxies=self.proxies
        )
        adapter.cert_verify(self.chat_pool, settings.chat_url, self.session.verify, None)
        self.chat_target = adapter.request_url(chat, self.proxies)
        self.call_timeout = urllib3.Timeout(
            connect=settings.connect_timeout, read=settings.read_timeout
        )
        self.json_headers = {**self.session.headers, "Content-Type": "application/json"}
        self.stream_headers = {**self.json_headers, **STREAM_HEADERS}

    def failed(self, kind: str) -> None:
        """Count a backend failure towards its breaker and the metrics."""
        self.breaker.record_failure()
        BACKEND_ERRORS.labels(self.name, kind).inc()
        CIRCUIT_OPEN.labels(self.name).set(1 if self.breaker.is_open else 0)

    def headers(self, principal: Principal, stream: bool) -> dict[str, str]:
        """Per-call headers: the backend's own key, else the one the caller passes on."""
        headers = dict(self.stream_headers if stream else self.json_headers)
        key = self.settings.api_key or principal.backend_key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def complete(self, body: dict[str, Any], principal: Principal) -> dict[str, Any]:
        """Send a non-streaming Chat request and return the completion."""
        response = self._call(body, principal, stream=False)
        try:
            completion = compact_json.loads(response.data.decode())
        except ValueError as exc:
            self.failed("invalid_json")
            raise BadGateway(f"Backend '{self.name}' sent invalid JSON") from exc
        if not isinstance(completion, dict):
            raise BadGateway(f"Backend '{self.name}' sent a completion that is not an object")
        return completion

    def stream(
        self, body: dict[str, Any], principal: Principal, handle: CallHandle | None = None
    ) -> ChatStream:
        """Open a streaming Chat request; errors before the first byte raise here.

        With a `handle`, another greenlet can cut the call while it waits for
        the backend's headers; a call cut so is not the backend's failure.
        """
        response = self._call(body, principal, stream=True, handle=handle)
        problem = _not_a_plain_event_stream(response.headers)
        if problem:
            _discard(response)
            self.failed("not_event_stream")
            raise BadGateway(f"Backend '{self.name}' {problem}")
        return ChatStream(self, response)

    def _call(
        self,
        body: dict[str, Any],
        principal: Principal,
        stream: bool,
        handle: CallHandle | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """POST a Chat request; a JSON answer comes back read, a stream's body unread."""
        self.breaker.check(self.name)
        data = compact_json.dumps(body).encode()
        try:
            with tracked(handle):
                response = self.chat_pool.urlopen(
                    "POST",
                    self.chat_target,
                    body=data,
                    headers=self.headers(principal, stream),
                    retries=self.retries,
                    redirect=False,
                    assert_same_host=False,
                    timeout=self.call_timeout,
                    preload_content=not stream,
                )
        except (HTTPError, OSError) as exc:
            if handle is not None and handle.was_cut:
                raise CallCut(f"The call to backend '{self.name}' was cut") from exc
            raise self._call_error(exc) from exc
        if response.status >= 300:
            raise self._error_from(response)
        self.breaker.record_success()
        CIRCUIT_OPEN.labels(self.name).set(0)
        return response

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

    def _error_from(self, response: urllib3.BaseHTTPResponse) -> GatewayError:
        status = response.status
        if status >= 500:
            self.failed(f"http_{status}")
        try:
            text = response.data.decode(errors="replace")
        except (HTTPError, OSError):
            text = ""
        finally:
            _discard(response)
        if status < 400:
            location = response.headers.get("Location", "elsewhere")
            return BadGateway(
                f"Backend '{self.name}' answered HTTP {status}: the call was redirected to "
                f"{location}; configure the final URL"
            )
        body = _json_or_text(text)
        return upstream_error(status, body, response.headers.get("Retry-After"), self.name)

    def list_models(self, principal: Principal) -> list[dict[str, Any]]:
        """Return the backend's models (its configured list if it cannot be asked)."""
        try:
            response = self.session.get(
                self.settings.base_url + "/models",
                headers=self.headers(principal, stream=False),
                timeout=MODELS_TIMEOUT,
                proxies=self.proxies,
            )
            response.raise_for_status()
            data = response.json().get("data")
            if isinstance(data, list):
                return [model for model in data if isinstance(model, dict) and "id" in model]
        except (requests.exceptions.RequestException, ValueError, AttributeError) as exc:
            log.warning("backend %s: cannot list models: %s", self.name, exc)
        return [model_entry(model, self.name) for model in self.settings.models]


def _json_or_text(text: str) -> Any:
    try:
        return compact_json.loads(text)
    except ValueError:
        return text[:1000]


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Close a reply that will not be read to its end; its connection is not reused."""
    response.close()
    response.release_conn()


def _not_a_plain_event_stream(headers: Any) -> str | None:
    if not headers.get("Content-Type", "").startswith("text/event-stream"):
        return "did not answer with an event stream"
    encoding = headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return f"sent its event stream with Content-Encoding '{encoding}' (identity was asked)"
    return None


def model_entry(model_id: str, owner: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner}


class Backends:
    """All configured backends, routed by model name."""

    def __init__(self, settings: Settings) -> None:
        self.all = [Backend(backend) for backend in settings.backends]

    @property
    def read_timeout(self) -> float:
        """The longest a backend may stay silent."""
        return max(backend.settings.read_timeout for backend in self.all)

    def for_model(self, model: str) -> Backend:
        """Return the first backend configured for `model`."""
        for backend in self.all:
            if backend.settings.serves(model):
                return backend
        raise NotFound(
            f"The model '{model}' does not exist.", param="model", code="model_not_found"
        )

    def list_models(self, principal: Principal) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for backend in self.all:
            for model in backend.list_models(principal):
                seen.setdefault(model["id"], model)
        return list(seen.values())


def init_app(app: Any, settings: Settings) -> None:
    """Create this worker's backend sessions."""
    app.extensions["backends"] = Backends(settings)
