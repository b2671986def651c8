"""The load generator names each error by its status and, for an OpenAI error body, its code."""

from __future__ import annotations

import json

import pytest

from bench.loadgen import error_kind


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            503,
            {"error": {"code": "store_unavailable", "message": "m"}},
            "HTTP 503 store_unavailable",
        ),
        (502, {"error": {"code": None, "message": "m"}}, "HTTP 502"),
        (500, b"<html>oops</html>", "HTTP 500"),
        (429, [1, 2], "HTTP 429"),
    ],
)
def test_error_kind(status, body, kind):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert error_kind(status, raw) == kind
