"""Model servers that speak Chat Completions: pooled sessions, timeouts, routing.

One `requests.Session` per backend per worker, made in `init_app`. Headers
are passed per call (sessions are shared between greenlets); every call
has a `(connect, read)` timeout; only connection failures (nothing sent
yet) are retried. requests' exceptions become the gateway's own here.

A Chat call is a copy of one request prepared at start-up (the URL parsed
and the session's headers merged once) with its own headers and body, sent
with `Session.send`: preparing every call through `Session.request` cost
~9% of a worker's CPU. The session keeps no cookies: it is shared by every
client's calls, so a cookie one call brought back must not ride on others.
"""

from __future__ import annotations

import logging
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from app import compact_json
from app.backends.breaker import CircuitBreaker
from app.backends.chat_stream import ChatStream
from app.backends.inflight import TRACKED_POOLS, CallHandle, tracked
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

__all__ = ["Backend", "Backends", "CallCut", "CallHandle", "ChatStream", "init_app"]


class CallCut(Exception):
    """A call was cut by the gateway itself (its client left): nobody is told."""


class Backend:
    """One upstream server: its settings, session and circuit breaker."""

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.session = requests.Session()
        # Proxy settings are read once here, not from the environment on
        # every call (that lookup costs ~6% of a request).
        self.proxies = requests.utils.get_environ_proxies(settings.base_url)
        self.session.trust_env = False
        self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        retry = Retry(total=None, connect=CONNECT_RETRIES, read=0, redirect=0, status=0, other=0)
        adapter = HTTPAdapter(
            pool_connections=1, pool_maxsize=settings.pool_size, max_retries=retry
        )
        adapter.poolmanager.pool_classes_by_scheme = TRACKED_POOLS
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.breaker = CircuitBreaker()
        self.chat_request = self.session.prepare_request(
            requests.Request("POST", settings.chat_url)
        )

    def failed(self, kind: str) -> None:
        """Count a backend failure towards its breaker and the metrics."""
        self.breaker.record_failure()
        BACKEND_ERRORS.labels(self.name, kind).inc()
        CIRCUIT_OPEN.labels(self.name).set(1 if self.breaker.is_open else 0)

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.settings.connect_timeout, self.settings.read_timeout)

    def headers(self, client_key: str | None, stream: bool) -> dict[str, str]:
        """Per-call headers: the backend's own key, else the client's."""
        headers = {"Content-Type": "application/json"}
        key = self.settings.api_key or client_key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if stream:
            # The stream is read off the socket as it is (app/backends/chat_stream.py).
            headers["Accept"] = "text/event-stream"
            headers["Accept-Encoding"] = "identity"
        return headers

    def complete(self, body: dict[str, Any], client_key: str | None) -> dict[str, Any]:
        """Send a non-streaming Chat request and return the completion."""
        response = self._post(body, client_key, stream=False)
        try:
            completion = response.json()
        except ValueError as exc:
            self.failed("invalid_json")
            raise BadGateway(f"Backend '{self.name}' sent invalid JSON") from exc
        finally:
            response.close()
        if not isinstance(completion, dict):
            raise BadGateway(f"Backend '{self.name}' sent a completion that is not an object")
        return completion

    def stream(
        self, body: dict[str, Any], client_key: str | None, handle: CallHandle | None = None
    ) -> ChatStream:
        """Open a streaming Chat request; errors before the first byte raise here.

        With a `handle`, another greenlet can cut the call while it waits for
        the backend's headers; a call cut so is not the backend's failure.
        """
        response = self._post(body, client_key, stream=True, handle=handle)
        problem = _not_a_plain_event_stream(response.headers)
        if problem:
            response.close()
            self.failed("not_event_stream")
            raise BadGateway(f"Backend '{self.name}' {problem}")
        return ChatStream(self, response)

    def _post(
        self,
        body: dict[str, Any],
        client_key: str | None,
        stream: bool,
        handle: CallHandle | None = None,
    ) -> requests.Response:
        self.breaker.check(self.name)
        data = compact_json.dumps(body).encode()
        try:
            request = self.chat_request.copy()
            request.headers.update(self.headers(client_key, stream))
            request.prepare_body(data, None)
            with tracked(handle):
                response = self.session.send(
                    request, timeout=self.timeout, stream=stream, proxies=self.proxies
                )
        except requests.exceptions.RequestException as exc:
            if handle is not None and handle.was_cut:
                raise CallCut(f"The call to backend '{self.name}' was cut") from exc
            raise self._call_error(exc) from exc
        if response.status_code >= 400:
            raise self._error_from(response)
        self.breaker.record_success()
        CIRCUIT_OPEN.labels(self.name).set(0)
        return response

    def _call_error(self, exc: requests.exceptions.RequestException) -> GatewayError:
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            self.failed("connect_timeout")
            return BackendUnavailable(f"Backend '{self.name}' did not accept a connection")
        if isinstance(exc, requests.exceptions.ReadTimeout):
            self.failed("timeout")
            return BackendTimeout(
                f"Backend '{self.name}' did not answer within {self.settings.read_timeout:g}s"
            )
        self.failed("unreachable")
        return BackendUnavailable(f"Backend '{self.name}' is unreachable: {exc}")

    def _error_from(self, response: requests.Response) -> GatewayError:
        if response.status_code >= 500:
            self.failed(f"http_{response.status_code}")
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:1000]
        finally:
            response.close()
        return upstream_error(response.status_code, body, response.headers.get("Retry-After"))

    def list_models(self, client_key: str | None) -> list[dict[str, Any]]:
        """Return the backend's models (its configured list if it cannot be asked)."""
        try:
            response = self.session.get(
                self.settings.base_url + "/models",
                headers=self.headers(client_key, stream=False),
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

    def list_models(self, client_key: str | None) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for backend in self.all:
            for model in backend.list_models(client_key):
                seen.setdefault(model["id"], model)
        return list(seen.values())


def init_app(app: Any, settings: Settings) -> None:
    """Create this worker's backend sessions."""
    app.extensions["backends"] = Backends(settings)
