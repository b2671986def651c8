"""The gateway's secrets as text: virtual key tokens and their hashes.

A virtual key's token is `gw-<lookup id>_<secret>`: 8 lowercase letters and
digits that find the key in O(1), then 43 characters of base64url (32
random bytes). Only HMAC-SHA256(pepper, secret) is stored, compared in
constant time. The pepper, the passthrough owners' key and the key that
seals idempotent replays are all derived from one server secret, each
with its own label, so none can stand in for another.

Pure: no Flask, no database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string

TOKEN_PREFIX = "gw-"
LOOKUP_LENGTH = 8
SECRET_BYTES = 32
SECRET_LENGTH = 43  # base64url of 32 bytes, unpadded
LOOKUP_ALPHABET = string.ascii_lowercase + string.digits
TOKEN = re.compile(
    rf"{TOKEN_PREFIX}([a-z0-9]{{{LOOKUP_LENGTH}}})_([A-Za-z0-9_-]{{{SECRET_LENGTH}}})"
)
ADMIN_PREFIX = "gwa-"  # an admin token from the database: the same shape, another prefix
ADMIN_TOKEN = re.compile(
    rf"{ADMIN_PREFIX}([a-z0-9]{{{LOOKUP_LENGTH}}})_([A-Za-z0-9_-]{{{SECRET_LENGTH}}})"
)
# Labels of the keys derived from the server secret.
KEY_PEPPER = b"virtual-key-pepper"
PASSTHROUGH_OWNER = b"passthrough-owner"
IDEMPOTENCY = b"idempotent-replays"
ADMIN_TOKEN_PEPPER = b"admin-token-pepper"
OWNER_PREFIX = "pk_"


def derive(server_secret: bytes, label: bytes) -> bytes:
    """The key for one use (`label`) of the server secret."""
    return hmac.new(server_secret, label, hashlib.sha256).digest()


def new_lookup_id() -> str:
    return "".join(secrets.choice(LOOKUP_ALPHABET) for _ in range(LOOKUP_LENGTH))


def new_secret() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode()


def token(lookup_id: str, secret: str, prefix: str = TOKEN_PREFIX) -> str:
    return f"{prefix}{lookup_id}_{secret}"


def token_prefix(lookup_id: str) -> str:
    """What a key is shown as (`gw-ab12cd34`): enough to tell keys apart, nothing to use."""
    return f"{TOKEN_PREFIX}{lookup_id}"


def parse(presented: str, shape: re.Pattern[str] = TOKEN) -> tuple[str, str] | None:
    """The lookup id and secret of a well-formed token (None for anything else)."""
    match = shape.fullmatch(presented)
    return (match.group(1), match.group(2)) if match else None


def secret_hash(pepper: bytes, secret: str) -> str:
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def matches(pepper: bytes, secret: str, stored: str | None) -> bool:
    """Tell, in constant time, whether `secret` is the one whose hash is `stored`."""
    return stored is not None and hmac.compare_digest(secret_hash(pepper, secret), stored)


def owner_of_key(owner_key: bytes, client_key: str) -> str:
    """Whose a passthrough client's stored objects are: an HMAC of its key, never the key."""
    digest = hmac.new(owner_key, client_key.encode(), hashlib.sha256).hexdigest()
    return OWNER_PREFIX + digest[:40]
