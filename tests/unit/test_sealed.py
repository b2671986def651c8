"""Sealed reasoning (app/protocol/sealed.py): the `encrypted_content` blob.

Only a gateway holding the same secret can read a token back; any change
to it, another secret or garbage opens to None (never an exception); the
token reveals nothing of the text it carries.
"""

from __future__ import annotations

import base64

import pytest

from app.protocol.sealed import PREFIX, open_sealed, seal

SECRET = b"gateway-test-secret-0123456789"
TEXT = "The user wants the weather in Paris, so I should call get_weather first."


def raw_bytes(token: str) -> bytes:
    return base64.urlsafe_b64decode(token[len(PREFIX) :])


def with_raw_bytes(raw: bytes) -> str:
    return PREFIX + base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    "text",
    [TEXT, "", "déjà vu — 思考 🤔", "x" * 100_000, "line one\nline two\n"],
    ids=["sentence", "empty", "unicode", "long", "lines"],
)
def test_round_trip_returns_the_text(text):
    assert open_sealed(seal(text, SECRET), SECRET) == text


def test_token_is_prefixed_url_safe_ascii():
    token = seal(TEXT, SECRET)
    assert token.startswith(PREFIX)
    assert token.isascii() and not {"+", "/", " ", "\n"} & set(token)


def test_token_does_not_reveal_the_text():
    text = "secret plan: " + "attack at dawn " * 20
    token = seal(text, SECRET)
    raw = raw_bytes(token)
    for needle in ("attack at dawn", "secret plan"):
        assert needle not in token
        assert needle.encode() not in raw
        assert base64.b64encode(needle.encode()).decode()[:12] not in token


def test_sealing_the_same_text_twice_gives_different_tokens():
    assert seal(TEXT, SECRET) != seal(TEXT, SECRET)


def test_wrong_secret_opens_to_none():
    token = seal(TEXT, SECRET)
    assert open_sealed(token, b"another-secret") is None
    assert open_sealed(token, SECRET + b"x") is None


@pytest.mark.parametrize("position", [0, 15, 16, 20, -33, -1], ids=lambda p: f"byte{p}")
def test_any_flipped_bit_is_detected(position):
    raw = bytearray(raw_bytes(seal(TEXT, SECRET)))
    raw[position] ^= 0x01
    assert open_sealed(with_raw_bytes(bytes(raw)), SECRET) is None


@pytest.mark.parametrize("cut", [1, 32, 40], ids=lambda c: f"minus{c}")
def test_truncated_token_is_detected(cut):
    raw = raw_bytes(seal(TEXT, SECRET))
    assert open_sealed(with_raw_bytes(raw[:-cut]), SECRET) is None


def test_appended_bytes_are_detected():
    raw = raw_bytes(seal(TEXT, SECRET))
    assert open_sealed(with_raw_bytes(raw + b"\x00"), SECRET) is None


@pytest.mark.parametrize(
    "token",
    [
        "",
        PREFIX,
        "not a token",
        "gwr0." + "A" * 80,
        PREFIX + "!!!!****",
        PREFIX + "abc",
        PREFIX + "é" * 70,
        PREFIX + base64.urlsafe_b64encode(b"\x00" * 47).decode(),
        PREFIX + base64.urlsafe_b64encode(b"\x00" * 200).decode(),
        "rs_encrypted_by_openai_gAAAAABo" + "x" * 60,
    ],
    ids=[
        "empty",
        "prefix-only",
        "words",
        "other-version",
        "bad-base64",
        "bad-padding",
        "non-ascii",
        "too-short",
        "zeros",
        "openai-blob",
    ],
)
def test_garbage_opens_to_none(token):
    assert open_sealed(token, SECRET) is None
