"""Admins signed in elsewhere: OIDC JWTs, and a trusted proxy's headers.

`OidcAdmins` checks a bearer JWT against the issuer's keys: signature (RS*
or ES* only: no `none`, no shared-secret HS*), `iss`, `aud`, `exp` and
`nbf` with 60 s of leeway. The keys come from the JWKS the issuer's
discovery document names (or `oidc_jwks_url`), fetched on first use,
refreshed in the background every `REFRESH_SECONDS`, and at once (at most
every `UNKNOWN_KID_SECONDS`) when a token names a key not yet seen. The
role, tenant and key-name prefixes come from claims, or from the SCIM user
of that name, which wins (app/auth/admin.py); with neither naming a role
and a tenant the sign-in is refused (`*` as the tenant: every tenant).

`ProxyAdmins` trusts `X-Gateway-User`, `-Role`, `-Tenant`, `-Key-Prefixes`
only from a peer within `proxy_cidrs` that also sends the shared
`X-Gateway-Proxy-Secret`; anything else carrying them is refused, so a
client cannot sign itself in by sending the headers (the shipped nginx
site also clears them).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from app.errors import Unauthorized

if TYPE_CHECKING:
    from app.auth.admin import Admin

log = logging.getLogger(__name__)

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]
LEEWAY_SECONDS = 60
REFRESH_SECONDS = 300.0
UNKNOWN_KID_SECONDS = 30.0
FETCH_TIMEOUT = 10.0
EVERY_TENANT = "*"
PROXY_HEADERS = (
    "X-Gateway-User",
    "X-Gateway-Role",
    "X-Gateway-Tenant",
    "X-Gateway-Key-Prefixes",
    "X-Gateway-Proxy-Secret",
)


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")


def _scope(actor: str, role: Any, tenant: Any, prefixes: Any) -> Admin:
    """An admin from claims or headers (its SCIM user's scope first), or a 401."""
    from app.auth.admin import ROLES, Admin, provisioned_user  # admin.py reads this module

    user = provisioned_user(actor.partition(":")[2])
    if user is not None:
        role = user.role or role
        tenant = user.tenant_id if user.tenant_id is not None else tenant
        prefixes = list(user.key_prefixes) or prefixes

    if role not in ROLES:
        raise Unauthorized(
            f"The sign-in names no gateway role ({', '.join(ROLES)}).", code="invalid_admin_token"
        )
    if not isinstance(tenant, str) or not tenant:
        raise Unauthorized("The sign-in names no gateway tenant.", code="invalid_admin_token")
    if isinstance(prefixes, str):
        prefixes = [part.strip() for part in prefixes.split(",") if part.strip()]
    if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
        raise Unauthorized(
            "The sign-in's key prefixes are not a list of names.", code="invalid_admin_token"
        )
    return Admin(
        actor=actor,
        role=role,
        tenant_id=None if tenant == EVERY_TENANT else tenant,
        key_prefixes=tuple(prefixes),
    )


class OidcAdmins:
    """Admins by OIDC JWT (see the module's text)."""

    def __init__(self, settings: Any) -> None:
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience
        self.jwks_url = settings.oidc_jwks_url
        self.claims = (
            settings.oidc_role_claim,
            settings.oidc_tenant_claim,
            settings.oidc_prefixes_claim,
        )
        self.keys: dict[str, Any] = {}
        self.fetched_at = 0.0
        self.lock = threading.Lock()
        self.refresher: threading.Thread | None = None

    def admin_for(self, token: str) -> Admin:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized(
                "The admin token is not a JWT.", code="invalid_admin_token"
            ) from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized(
                f"JWTs signed with {header.get('alg')!r} are not accepted.",
                code="invalid_admin_token",
            )
        key = self._key(header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The sign-in has expired.", code="admin_token_expired") from None
        except (TypeError, ValueError):  # an algorithm of one family, a key of the other
            raise Unauthorized(
                "The JWT's algorithm does not fit its key.", code="invalid_admin_token"
            ) from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(
                f"The sign-in was refused: {exc}.", code="invalid_admin_token"
            ) from None
        role, tenant, prefixes = (claims.get(name) for name in self.claims)
        return _scope(f"oidc:{claims['sub']}", role, tenant, prefixes or [])

    def _key(self, kid: str | None) -> Any:
        self._start_refreshing()
        key = self.keys.get(kid or "")
        if key is None and time.monotonic() - self.fetched_at > UNKNOWN_KID_SECONDS:
            self.refresh()  # a key the issuer rotated in since the last fetch
            key = self.keys.get(kid or "")
        if key is None and kid is None and len(self.keys) == 1:
            key = next(iter(self.keys.values()))
        if key is None:
            raise Unauthorized(
                "The JWT's signing key is not the issuer's.", code="invalid_admin_token"
            )
        return key

    def refresh(self) -> None:
        """Fetch the issuer's keys; a failure, or a JWKS with none usable, keeps those known."""
        import jwt
        import requests

        with self.lock:
            self.fetched_at = time.monotonic()
            try:
                url = self.jwks_url or self._discover(requests)
                answer = requests.get(url, timeout=FETCH_TIMEOUT)
                answer.raise_for_status()
                entries = answer.json().get("keys", [])
            except Exception as exc:  # the network, the issuer: keep serving what is known
                log.warning("could not fetch the OIDC keys of %s: %s", self.issuer, exc)
                return
            keys = {}
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                    continue
                try:
                    keys[entry.get("kid", "")] = jwt.PyJWK(entry).key
                except (jwt.PyJWTError, ValueError, TypeError) as exc:
                    log.warning(
                        "OIDC key %s of %s left out: %s", entry.get("kid"), self.issuer, exc
                    )
            if keys:
                self.keys = keys

    def _discover(self, requests: Any) -> str:
        url = f"{self.issuer}/.well-known/openid-configuration"
        answer = requests.get(url, timeout=FETCH_TIMEOUT)
        answer.raise_for_status()
        self.jwks_url = answer.json()["jwks_uri"]
        return self.jwks_url

    def _start_refreshing(self) -> None:
        # Started on first use, in the worker: a thread started in gunicorn's
        # master would not survive the fork.
        with self.lock:
            if self.refresher is not None:
                return
            self.refresher = threading.Thread(target=self._keep_refreshing, daemon=True)
            self.refresher.start()
        self.refresh()

    def _keep_refreshing(self) -> None:
        while True:
            time.sleep(REFRESH_SECONDS)
            try:
                self.refresh()
            except Exception:  # never let the refresher die
                log.exception("OIDC key refresh failed")


class ProxyAdmins:
    """Admins a trusted proxy signed in, named by its headers (see the module's text)."""

    def __init__(self, secret: str, cidrs: tuple[str, ...]) -> None:
        self.secret = secret.encode()
        self.networks = [ipaddress.ip_network(cidr) for cidr in cidrs]

    def admin_for(self, headers: Mapping[str, str], peer: str | None) -> Admin | None:
        """The admin the headers name (None: none sent); a 401 if they cannot be trusted."""
        if not any(headers.get(name) for name in PROXY_HEADERS):
            return None
        sent = headers.get("X-Gateway-Proxy-Secret", "").encode()
        trusted_peer = _address(peer) is not None and any(
            _address(peer) in network for network in self.networks
        )
        if not trusted_peer or not hmac.compare_digest(sent, self.secret):
            raise Unauthorized(
                "Sign-in headers are accepted only from the trusted proxy.",
                code="untrusted_proxy_headers",
            )
        user = headers.get("X-Gateway-User", "")
        if not user:
            raise Unauthorized("The proxy named no user.", code="invalid_admin_token")
        prefixes = headers.get("X-Gateway-Key-Prefixes", "")
        return _scope(
            f"proxy:{user}",
            headers.get("X-Gateway-Role"),
            headers.get("X-Gateway-Tenant"),
            prefixes,
        )


def _address(peer: str | None) -> Any:
    """The peer's IP address (None for a unix socket's peer, or none: never trusted)."""
    try:
        return ipaddress.ip_address(peer or "")
    except ValueError:
        return None
