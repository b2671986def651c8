"""Admins signed in elsewhere: OIDC JWTs against a local JWKS server, and a trusted proxy.

The issuer is a real HTTP server on loopback serving a discovery document
and a JWKS made from real RSA and EC key pairs; tokens are signed with
them by PyJWT. Role, tenant and key prefixes come from the claims. Every
way a token can be wrong is a 401 that changes nothing: expired beyond the
leeway, another audience or issuer, `none` or HS256 (the public key used as
a shared secret), a key that is not the issuer's, no role. A key the
issuer rotates in is found by fetching the JWKS again. Proxy headers count
only from the proxy's addresses with its secret.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.integration.tenancy import KEYS_MODE, AdminClient

AUDIENCE = "gateway-admin"
PROXY_SECRET = "proxy-secret-0123456789"


class Issuer:
    """A discovery document and a JWKS on loopback; `keys` can change (a rotation)."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}  # kid -> private key
        self.jwks_fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks.json"}
                elif self.path == "/jwks.json":
                    issuer.jwks_fetches += 1
                    body = {"keys": [issuer.jwk(kid, key) for kid, key in issuer.keys.items()]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def jwk(kid: str, key: Any) -> dict:
        if isinstance(key, rsa.RSAPrivateKey):
            entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            entry["alg"] = "RS256"
        else:
            entry = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            entry["alg"] = "ES256"
        return {**entry, "kid": kid, "use": "sig"}

    def token(self, kid: str, key: Any = None, algorithm: str | None = None, **claims: Any) -> str:
        key = key or self.keys[kid]
        now = int(time.time())
        body = {"iss": self.url, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
        algorithm = algorithm or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
        return jwt.encode({**body, **claims}, key, algorithm=algorithm, headers={"kid": kid})


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def issuer():
    server = Issuer()
    server.keys = {"rsa-1": rsa_key(), "ec-1": ec.generate_private_key(ec.SECP256R1())}
    yield server
    server.server.shutdown()


@pytest.fixture
def plane(make_app, issuer):
    app = make_app(
        **KEYS_MODE,
        oidc_issuer=issuer.url,
        oidc_audience=AUDIENCE,
        proxy_secret=PROXY_SECRET,
        proxy_cidrs="10.1.0.0/16",
    )
    root = AdminClient(app)
    root.tenant("acme")
    return app, root


ADMIN_EVERYWHERE = {"gateway_role": "admin", "gateway_tenant": "*"}


def test_an_rs256_and_an_es256_token_sign_admins_in_with_their_claims(plane, issuer):
    app, root = plane
    super_admin = AdminClient(app, issuer.token("rsa-1", **ADMIN_EVERYWHERE))
    made = super_admin.key("by-oidc", tenant_id="acme")
    entry = root.ok("GET", f"/audit?resource={made['id']}")["data"][0]
    assert entry["actor"] == "oidc:alice"
    viewer = AdminClient(
        app, issuer.token("ec-1", sub="bob", gateway_role="viewer", gateway_tenant="acme")
    )
    assert [t["id"] for t in viewer.ok("GET", "/tenants")["data"]] == ["acme"]
    assert viewer.refused("POST", "/keys", {"name": "x"}, 403)["code"] == "permission_denied"
    limited = AdminClient(
        app,
        issuer.token(
            "rsa-1", gateway_role="admin", gateway_tenant="acme", gateway_key_prefixes=["ci-"]
        ),
    )
    assert limited.refused("POST", "/keys", {"name": "other"}, 403)["param"] == "name"
    assert limited.key("ci-one")["tenant_id"] == "acme"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"exp": lambda: int(time.time()) - 120}, "admin_token_expired"),
        ({"aud": "someone-else"}, "invalid_admin_token"),
        ({"iss": "http://127.0.0.1:1"}, "invalid_admin_token"),
        ({"gateway_role": "owner"}, "invalid_admin_token"),
        ({"gateway_role": None}, "invalid_admin_token"),
        ({"gateway_tenant": None}, "invalid_admin_token"),
        ({"nbf": lambda: int(time.time()) + 600}, "invalid_admin_token"),
    ],
)
def test_a_wrong_token_is_a_401_that_changes_nothing(plane, issuer, change, code):
    app, root = plane
    # Times are taken when the test runs, not when it is collected (a long suite outlasts them).
    change = {name: value() if callable(value) else value for name, value in change.items()}
    claims = {**ADMIN_EVERYWHERE, **change}
    claims = {name: value for name, value in claims.items() if value is not None}
    bad = AdminClient(app, issuer.token("rsa-1", **claims))
    assert bad.refused("POST", "/keys", {"name": "x"}, 401)["code"] == code
    assert root.ok("GET", "/keys")["data"] == []


def test_the_leeway_accepts_a_token_just_expired(plane, issuer):
    app, _ = plane
    token = issuer.token("rsa-1", exp=int(time.time()) - 30, **ADMIN_EVERYWHERE)
    assert AdminClient(app, token).ok("GET", "/keys")["object"] == "list"


def test_none_hs256_and_a_foreign_key_are_refused(plane, issuer):
    app, _ = plane
    now = int(time.time())
    claims = {
        "iss": issuer.url,
        "aud": AUDIENCE,
        "sub": "eve",
        "exp": now + 300,
        **ADMIN_EVERYWHERE,
    }
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "rsa-1"})
    public_pem = (
        issuer.keys["rsa-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    # The classic confusion: the issuer's public key used as an HMAC secret.
    import hashlib
    import hmac as hmac_module

    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode())
    payload = jwt.utils.base64url_encode(json.dumps(claims).encode())
    signature = hmac_module.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    confused = b".".join([header, payload, jwt.utils.base64url_encode(signature)]).decode()
    foreign = issuer.token("rsa-1", key=rsa_key(), **ADMIN_EVERYWHERE)
    for token in (unsigned, confused, foreign):
        assert AdminClient(app, token).refused("GET", "/keys", None, 401)


def test_a_key_the_issuer_rotates_in_is_fetched_when_first_seen(plane, issuer):
    app, _ = plane
    assert AdminClient(app, issuer.token("rsa-1", **ADMIN_EVERYWHERE)).ok("GET", "/keys")
    fetched = issuer.jwks_fetches
    issuer.keys["rsa-2"] = rsa_key()
    app.extensions["admin_auth"].oidc.fetched_at -= 60  # the last fetch is old enough
    token = issuer.token("rsa-2", **ADMIN_EVERYWHERE)
    assert AdminClient(app, token).ok("GET", "/keys")["object"] == "list"
    assert issuer.jwks_fetches == fetched + 1
    # An unknown kid again at once does not make the gateway fetch in a loop.
    unknown = issuer.token("rsa-9", key=rsa_key(), **ADMIN_EVERYWHERE)
    AdminClient(app, unknown).refused("GET", "/keys", None, 401)
    assert issuer.jwks_fetches == fetched + 1


def proxied(app, peer: str, **headers: str):
    client = app.test_client()
    return client.get("/v1/gateway/tenants", headers=headers, environ_base={"REMOTE_ADDR": peer})


def test_the_trusted_proxy_signs_admins_in_by_headers(plane):
    app, _ = plane
    signed = {
        "X-Gateway-User": "carol@example.com",
        "X-Gateway-Role": "viewer",
        "X-Gateway-Tenant": "acme",
        "X-Gateway-Proxy-Secret": PROXY_SECRET,
    }
    answer = proxied(app, "10.1.2.3", **signed)
    assert answer.status_code == 200
    assert [t["id"] for t in answer.get_json()["data"]] == ["acme"]
    for peer, headers in (
        ("192.0.2.7", signed),  # not the proxy's address
        ("10.1.2.3", {**signed, "X-Gateway-Proxy-Secret": "wrong-secret-0123456"}),
        ("10.1.2.3", {name: v for name, v in signed.items() if name != "X-Gateway-Proxy-Secret"}),
    ):
        refused = proxied(app, peer, **headers)
        assert refused.status_code == 401
        assert refused.get_json()["error"]["code"] == "untrusted_proxy_headers"


def test_proxy_headers_without_a_configured_proxy_are_refused(make_app):
    app = make_app(**KEYS_MODE)
    refused = proxied(
        app,
        "127.0.0.1",
        **{"X-Gateway-User": "mallory", "X-Gateway-Role": "admin", "X-Gateway-Tenant": "*"},
    )
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "untrusted_proxy_headers"


def test_an_algorithm_that_does_not_fit_the_named_key_is_a_401(plane, issuer):
    app, _ = plane
    # ES256 claimed for the issuer's RSA key: refused, not a crash.
    mismatched = issuer.token(
        "rsa-1", key=issuer.keys["ec-1"], algorithm="ES256", **ADMIN_EVERYWHERE
    )
    assert AdminClient(app, mismatched).refused("GET", "/keys", None, 401)["code"] == (
        "invalid_admin_token"
    )


def test_a_peer_without_an_ip_address_is_never_the_proxy(plane):
    app, _ = plane
    headers = {
        "X-Gateway-User": "u",
        "X-Gateway-Role": "admin",
        "X-Gateway-Tenant": "*",
        "X-Gateway-Proxy-Secret": PROXY_SECRET,
    }
    for peer in ("", "unix:/run/gw.sock"):
        answer = proxied(app, peer, **headers)
        assert answer.status_code == 401, peer
