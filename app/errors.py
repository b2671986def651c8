"""The gateway's one exception tree, rendered in the OpenAI error shape.

`GatewayError` subclasses carry the HTTP status, the OpenAI `type` and an
optional `code`/`param`. The API layer renders them as JSON; a stream that
has already started renders them as events (see `protocol.stream`).
"""

from __future__ import annotations

import re
from typing import Any

MAX_BACKEND_WORDS = 300
MAX_REFUSAL = 2000
TRACEBACK = "Traceback (most recent call last)"
FILE_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.@+-]+){2,}")
MARKUP = re.compile(r"<[^>]*>")


class GatewayError(Exception):
    """An error a client should see, with its HTTP status and OpenAI type."""

    status = 500
    error_type = "server_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.headers = headers or {}
        if status is not None:
            self.status = status

    def to_dict(self) -> dict[str, Any]:
        """Return the `error` object of the OpenAI error body."""
        return {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }


class InvalidRequest(GatewayError):
    status = 400
    error_type = "invalid_request_error"


class Unauthorized(GatewayError):
    """No key, or one the gateway does not accept (OpenAI answers these with 401 too)."""

    status = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    """A known caller asked for what its key or role does not allow."""

    status = 403
    error_type = "invalid_request_error"
    default_code = "permission_denied"


class Conflict(GatewayError):
    status = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class PreconditionFailed(GatewayError):
    """`If-Match` named a version the object has moved on from."""

    status = 412
    error_type = "invalid_request_error"
    default_code = "precondition_failed"


class RateLimited(GatewayError):
    """A key's requests, tokens or requests at once per its limits (OpenAI's 429)."""

    status = 429
    error_type = "requests"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, error_type: str = "requests", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.error_type = error_type  # requests or tokens, as OpenAI says which


class QuotaExceeded(GatewayError):
    """A budget has no room for the request: retrying will not help (x-should-retry: false)."""

    status = 429
    error_type = "insufficient_quota"
    default_code = "insufficient_quota"


class NotFound(GatewayError):
    status = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class UpstreamError(GatewayError):
    """The backend answered with an error status; passed on faithfully."""

    error_type = "upstream_error"


class BadGateway(GatewayError):
    status = 502
    error_type = "server_error"
    default_code = "bad_gateway"


class BackendUnavailable(GatewayError):
    status = 503
    error_type = "server_error"
    default_code = "backend_unavailable"


class BackendTimeout(GatewayError):
    status = 504
    error_type = "server_error"
    default_code = "backend_timeout"


class StoreError(GatewayError):
    status = 503
    error_type = "server_error"
    default_code = "store_unavailable"


class StoreFull(StoreError):
    """The store's disk (or database) is full: nothing can be written, reads still work."""

    status = 507
    default_code = "insufficient_storage"


UPSTREAM_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def upstream_error(
    status: int, body: Any, retry_after: str | None = None, backend: str = "default"
) -> GatewayError:
    """Translate a backend error reply into the error the client should see.

    A refusal (4xx) passes the backend's own OpenAI-shaped message on. A
    failure (5xx) names the backend and its status, with its words cut
    short and without the traceback or file paths some servers answer with.
    """
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, str):
        detail = {"message": detail}
    if not isinstance(detail, dict):
        detail = {"message": body if isinstance(body, str) else ""}
    said = str(detail.get("message") or "")
    if status >= 500:
        words = backend_words(said)
        message = f"Backend '{backend}' failed (HTTP {status})" + (f": {words}" if words else "")
    elif isinstance(body, dict) and said.strip():  # the backend's own refusal, as it worded it
        message = said[:MAX_REFUSAL]
    else:
        message = f"Backend error: {backend_words(said) or f'HTTP {status}'}"
    error = UpstreamError(
        message,
        param=detail.get("param") if isinstance(detail.get("param"), str) else None,
        code=str(detail["code"]) if detail.get("code") is not None else None,
        status=status if 400 <= status <= 599 else 502,
        headers={"Retry-After": retry_after} if retry_after else None,
    )
    error.error_type = UPSTREAM_ERROR_TYPES.get(status, "server_error")
    return error


def backend_words(text: str) -> str:
    """What a backend said, fit for a client: no traceback, markup or file paths, cut short."""
    before, found, traceback = text.partition(TRACEBACK)
    if found:  # keep what came before it, and the exception's own last line
        lines = [line.strip() for line in traceback.splitlines() if line.strip()]
        before = f"{before} {lines[-1] if len(lines) > 1 else ''}"
    words = " ".join(FILE_PATH.sub("…", MARKUP.sub(" ", before)).split())
    if len(words) > MAX_BACKEND_WORDS:
        words = words[: MAX_BACKEND_WORDS - 1].rstrip() + "…"
    return words


def error_body(error: GatewayError) -> dict[str, Any]:
    """Return the JSON body for `error`."""
    return {"error": error.to_dict()}
