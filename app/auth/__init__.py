"""Authentication: from a request's headers to the principal it acts as.

Passthrough mode (the only one so far): every caller is the anonymous
principal, and the bearer key it sent, if any, is forwarded to backends
that have no key of their own. The authenticator takes a mapping of
headers, not a Flask request, so an ext_proc process can use it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.auth.principal import ANONYMOUS_PRINCIPAL, Owner, Principal
from app.errors import InvalidRequest

MAX_AUTHORIZATION = 4096

__all__ = ["Owner", "Passthrough", "Principal", "init_app"]


class Passthrough:
    """Every caller is anonymous; its bearer key goes on to the backend."""

    def principal_for(self, headers: Mapping[str, str]) -> Principal:
        """The principal of a request with these headers; a malformed header is a 400."""
        key = bearer_token(headers.get("Authorization", ""))
        return Principal(backend_key=key) if key else ANONYMOUS_PRINCIPAL


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer …` header (None for another scheme or none)."""
    if len(header) > MAX_AUTHORIZATION or not header.isascii() or not header.isprintable():
        raise InvalidRequest("The Authorization header is malformed.", code="invalid_header")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def init_app(app: Any, settings: Any) -> None:
    """Choose how this app tells its callers apart."""
    app.extensions["auth"] = Passthrough()
