"""Authentication: from a request's headers to the principal it acts as.

Two modes (`GATEWAY_AUTH`). Passthrough: the bearer key a client sent, if
any, goes on to backends that have no key of their own, and an HMAC of it
(never the key) owns what the client stores. Keys: clients present the
gateway's virtual keys (app/auth/keys.py), and backends use their own.
The admin plane has its own principals (app/auth/admin.py). An
authenticator takes a mapping of headers, not a Flask request, so an
ext_proc process can use it too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from app.auth import tokens
from app.auth.principal import ANONYMOUS_PRINCIPAL, DEFAULT_TENANT, Owner, Principal
from app.config.settings import SHARE_PROJECT
from app.errors import InvalidRequest

MAX_AUTHORIZATION = 4096
SERVER_SECRET = "auth"  # the name of the server secret kept in the store, when none is set

log = logging.getLogger(__name__)

__all__ = ["Owner", "Passthrough", "Principal", "bearer_token", "init_app", "presented_key"]


class Passthrough:
    """A caller is known by its key's HMAC (or is anonymous); the key goes on to the backend."""

    def __init__(self, owner_key: bytes) -> None:
        self.owner_key = owner_key

    def principal_for(self, headers: Mapping[str, str]) -> Principal:
        """The principal of a request with these headers; a malformed header is a 400."""
        key = bearer_token(headers.get("Authorization", ""))
        if not key:
            return ANONYMOUS_PRINCIPAL
        owner_id = tokens.owner_of_key(self.owner_key, key)
        owner = Owner(DEFAULT_TENANT, owner_id, reads_anonymous=True)
        return Principal(backend_key=key, owner=owner)


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer …` header (None for another scheme or none)."""
    _check_header(header, "Authorization")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a client presents: `Authorization: Bearer …`, else `x-api-key`."""
    key = bearer_token(headers.get("Authorization", ""))
    if key:
        return key
    other = headers.get("x-api-key", "")
    _check_header(other, "x-api-key")
    return other.strip() or None


def _check_header(value: str, name: str) -> None:
    if len(value) > MAX_AUTHORIZATION or not value.isascii() or not value.isprintable():
        raise InvalidRequest(f"The {name} header is malformed.", code="invalid_header")


def server_secret(settings: Any) -> bytes:
    """The secret behind key hashes, passthrough owners and replays: configured, else kept."""
    if settings.auth.secret:
        return settings.auth.secret.encode()
    from app.store import db, responses

    with db.connection_context():
        return responses.shared_secret(SERVER_SECRET)


def init_app(app: Any, settings: Any) -> None:
    """Choose how this app tells its callers apart, and who may use its admin plane."""
    from app.auth.admin import AdminAuth
    from app.auth.keys import VirtualKeys

    secret = server_secret(settings)
    if settings.auth.mode == "keys":
        if not settings.auth.secret:
            log.warning(
                "GATEWAY_AUTH_SECRET is not set: the pepper of the key hashes is kept in "
                "the store beside them; set it to keep a copied database from being enough"
            )
        app.extensions["auth"] = VirtualKeys(
            tokens.derive(secret, tokens.KEY_PEPPER),
            share_projects=settings.auth.sharing == SHARE_PROJECT,
        )
    else:
        app.extensions["auth"] = Passthrough(tokens.derive(secret, tokens.PASSTHROUGH_OWNER))
    app.extensions["admin_auth"] = AdminAuth(settings, secret)
