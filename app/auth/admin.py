"""Who may use the admin plane (/v1/gateway/…), and how far their word reaches.

An `Admin` has a role (`viewer` reads, `admin` also changes) and a scope:
a tenant (None: every tenant, a super-admin) and, optionally, the key-name
prefixes it may see and touch. The token of `GATEWAY_ADMIN_TOKEN` is a
super-admin; only its HMAC is held, compared in constant time. Tokens made
through `/v1/gateway/admin-tokens` (`gwa-<id>_<secret>`) are found by their
id and checked the same way; they carry their own role and scope. A token
made by a signed-in user (OIDC or the trusted proxy) works only while that
user may sign in: once its SCIM user is deactivated or deleted, the token
is refused too.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.auth import bearer_token, tokens
from app.auth.oidc import PROXY_HEADERS, looks_like_jwt
from app.errors import PermissionDenied, Unauthorized

VIEWER, ADMIN = "viewer", "admin"
ROLES = (VIEWER, ADMIN)
STATIC_ACTOR = "admin-token:env"
SIGN_INS = ("oidc", "proxy")  # the actors of sign-ins: "oidc:<sub>", "proxy:<user>"


@dataclass(frozen=True)
class Admin:
    """An admin principal: who (for the audit log), its role, and its scope."""

    actor: str
    role: str
    tenant_id: str | None = None  # None: a super-admin
    key_prefixes: tuple[str, ...] = ()

    @property
    def is_super(self) -> bool:
        return self.tenant_id is None

    def sees_tenant(self, tenant_id: str) -> bool:
        return self.tenant_id is None or self.tenant_id == tenant_id

    def sees_key(self, tenant_id: str, name: str) -> bool:
        if not self.sees_tenant(tenant_id):
            return False
        return not self.key_prefixes or name.startswith(self.key_prefixes)

    def require_write(self) -> None:
        if self.role != ADMIN:
            raise PermissionDenied("This admin token may read, not change anything.")

    def require_super(self) -> None:
        if not self.is_super:
            raise PermissionDenied("Only an admin of every tenant may do this.")


class AdminAuth:
    """Headers in, the admin they belong to out (or a 401)."""

    def __init__(self, settings: Any, server_secret: bytes) -> None:
        self.pepper = tokens.derive(server_secret, tokens.ADMIN_TOKEN_PEPPER)
        # What the admin plane's use cases need of the server secret.
        self.key_pepper = tokens.derive(server_secret, tokens.KEY_PEPPER)
        self.replay_key = tokens.derive(server_secret, tokens.IDEMPOTENCY)
        token = settings.auth.admin_token
        self.static_hash = tokens.secret_hash(self.pepper, token) if token else None
        from app.auth.oidc import OidcAdmins, ProxyAdmins

        auth = settings.auth
        self.oidc = OidcAdmins(auth) if auth.oidc_issuer else None
        self.proxy = ProxyAdmins(auth.proxy_secret, auth.proxy_cidrs) if auth.proxy_secret else None

    def admin_for(self, headers: Mapping[str, str], peer: str | None = None) -> Admin:
        """The admin of a request: signed in by the trusted proxy, or by its bearer token."""
        if self.proxy is not None:
            signed_in = self.proxy.admin_for(headers, peer)
            if signed_in is not None:
                return signed_in
        elif any(headers.get(name) for name in PROXY_HEADERS):
            raise Unauthorized(
                "Sign-in headers are accepted only from a trusted proxy, and none is set.",
                code="untrusted_proxy_headers",
            )
        presented = bearer_token(headers.get("Authorization", ""))
        if not presented:
            raise Unauthorized(
                "The admin API needs an admin token: Authorization: Bearer <token>.",
                code="missing_admin_token",
            )
        if self.static_hash is not None and hmac.compare_digest(
            tokens.secret_hash(self.pepper, presented), self.static_hash
        ):
            return Admin(actor=STATIC_ACTOR, role=ADMIN)
        parsed = tokens.parse(presented, tokens.ADMIN_TOKEN)
        if parsed is not None:
            admin = self._stored(*parsed)
            if admin is not None:
                return admin
        elif self.oidc is not None and looks_like_jwt(presented):
            return self.oidc.admin_for(presented)
        raise Unauthorized("Unknown admin token.", code="invalid_admin_token")

    def _stored(self, lookup_id: str, secret: str) -> Admin | None:
        """The admin of a token made through the API (None: unknown, revoked or expired)."""
        from app.store import tenancy

        row = tenancy.admin_token_by_lookup(lookup_id)
        if row is None or not tokens.matches(self.pepper, secret, row.secret_hash):
            return None
        if row.revoked_at is not None:
            return None
        if row.expires_at is not None and row.expires_at <= time.time():
            raise Unauthorized("This admin token has expired.", code="admin_token_expired")
        source, _, user_name = row.created_by.partition(":")
        if source in SIGN_INS:  # made by a signed-in user: it lasts only while they may sign in
            provisioned_user(user_name)
        return Admin(
            actor=f"admin-token:{row.id}",
            role=row.role,
            tenant_id=row.tenant_id,
            key_prefixes=row.key_prefixes,
        )


def provisioned_user(user_name: str) -> Any:
    """The SCIM user a sign-in names (None: none); a deactivated one is refused at once.

    The name is the sign-in's (an OIDC `sub`, the proxy's user). Its role,
    tenant and key prefixes, where set, decide the admin's scope.
    """
    from app.store import scim

    user = scim.user_named(user_name)
    if user is not None and user.deleted_at is not None:
        raise Unauthorized(
            f"The user '{user_name}' has been deprovisioned.", code="user_deprovisioned"
        )
    if user is not None and not user.active:
        raise Unauthorized(f"The user '{user_name}' is deactivated.", code="user_deactivated")
    return user
