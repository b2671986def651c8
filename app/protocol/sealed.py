"""Text the gateway seals for itself and only it can open again.

Reasoning carried by the client: with `store: false` (Codex) nothing is
kept on the server, so reasoning travels inside the reasoning item as an
opaque `encrypted_content` blob. The admin plane's idempotent replays are
kept sealed in the store too. A blob is zlib-compressed text, encrypted
with an HMAC-SHA256 keystream and authenticated (encrypt, then MAC). Only
a gateway holding the same secret can open it; a blob that was tampered
with or sealed under another secret opens to `None`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import zlib

PREFIX = "gwr1."
NONCE_BYTES = 16
TAG_BYTES = 32
BLOCK_BYTES = 32


def seal(text: str, secret: bytes) -> str:
    """Return an opaque token holding `text`."""
    nonce = os.urandom(NONCE_BYTES)
    plain = zlib.compress(text.encode())
    cipher = _xor(plain, _keystream(_derive(secret, b"enc"), nonce, len(plain)))
    tag = hmac.new(_derive(secret, b"mac"), nonce + cipher, hashlib.sha256).digest()
    return PREFIX + base64.urlsafe_b64encode(nonce + cipher + tag).decode()


def open_sealed(token: str, secret: bytes) -> str | None:
    """Return the text sealed in `token`, or None if it is not ours or was altered."""
    if not token.startswith(PREFIX):
        return None
    try:
        raw = base64.urlsafe_b64decode(token[len(PREFIX) :].encode())
    except (ValueError, TypeError):
        return None
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        return None
    nonce, cipher, tag = raw[:NONCE_BYTES], raw[NONCE_BYTES:-TAG_BYTES], raw[-TAG_BYTES:]
    expected = hmac.new(_derive(secret, b"mac"), nonce + cipher, hashlib.sha256).digest()
    if not hmac.compare_digest(tag, expected):
        return None
    plain = _xor(cipher, _keystream(_derive(secret, b"enc"), nonce, len(cipher)))
    try:
        return zlib.decompress(plain).decode()
    except (zlib.error, UnicodeDecodeError):
        return None


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, b"gateway-reasoning-" + purpose, hashlib.sha256).digest()


def _keystream(key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = (length + BLOCK_BYTES - 1) // BLOCK_BYTES
    return b"".join(
        hmac.new(key, nonce + counter.to_bytes(8, "big"), hashlib.sha256).digest()
        for counter in range(blocks)
    )[:length]


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream, strict=False))
