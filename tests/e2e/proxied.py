"""What must hold through any reverse proxy shipped in front of the gateway (nginx, Caddy).

Each check takes the proxy's stack (its /v1 URL and an HTTP client trusting
its certificate) or an openai client through it, and the fake backend:
tests/e2e/test_nginx.py and test_caddy.py run every one of them.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

import openai
import pytest

from tests import fakebackend as fb
from tests.conftest import TEST_KEY
from tests.integration.helpers import (
    MODEL,
    assert_openai_error,
    assert_valid_stream,
    create,
    sse_events,
    stream,
)

# The stacks' gateway keeps files up to this (GATEWAY_MAX_FILE_BYTES), above the proxies'
# 10 MB limit for every other body and below their 513 MB one for uploads.
FILE_CAP = 16 * 1024 * 1024
OVER_BODY_LIMIT = 12 * 1024 * 1024
OVER_UPLOAD_LIMIT = 600 * 1024 * 1024


class Proxied(Protocol):
    base_url: str  # the proxy's /v1 URL
    verify: ssl.SSLContext | bool

    def http(self) -> Any: ...


def first_delta_arrives_before_the_backend_finishes(backend: Any, sdk: openai.OpenAI) -> None:
    backend.enqueue(fb.text("one two three four five six", chunk_size=6, delay=0.5))
    start = time.monotonic()
    with sdk.responses.with_streaming_response.create(
        model=MODEL, input="Count.", stream=True
    ) as raw:
        arrivals = [(time.monotonic() - start, line) for line in raw.iter_lines()]
    response = assert_valid_stream(sse_events(line for _, line in arrivals))
    assert response.output_text == "one two three four five six"
    first_delta = next(at for at, line in arrivals if "response.output_text.delta" in line)
    finished = arrivals[-1][0]
    assert finished >= 2.0, f"chunks 0.5 s apart, yet the stream took {finished:.2f} s"
    assert first_delta < finished / 2, f"first delta at {first_delta:.2f} s of {finished:.2f} s"


def sdk_works_json_stream_and_previous_response(backend: Any, sdk: openai.OpenAI) -> None:
    first = create(sdk, input="Remember the number 7.")
    assert first.response.status == "completed"
    assert backend.requests[-1].headers["authorization"] == f"Bearer {TEST_KEY}"
    backend.enqueue(fb.text("It was 7."))
    second = stream(sdk, input="Which number?", previous_response_id=first.response.id)
    assert second.response.output_text == "It was 7."
    assert second.response.previous_response_id == first.response.id
    history = [message["content"] for message in backend.chat_requests()[-1]["messages"]]
    assert history[0] == "Remember the number 7."
    assert history[-1] == "Which number?"


def stream_headers_survive_uncompressed(stack: Proxied) -> None:
    with (
        stack.http() as client,
        client.stream(
            "POST",
            f"{stack.base_url}/responses",
            headers={"Authorization": f"Bearer {TEST_KEY}", "Accept-Encoding": "gzip"},
            json={"model": MODEL, "input": "Hi", "stream": True},
        ) as raw,
    ):
        assert_valid_stream(sse_events(raw.iter_lines()))
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["cache-control"] == "no-cache"
    assert raw.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in raw.headers


def websocket_attempt_gets_the_gateways_clean_404(stack: Proxied, backend: Any) -> None:
    upgrade = {
        "Authorization": f"Bearer {TEST_KEY}",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    with stack.http() as client:
        answer = client.get(f"{stack.base_url}/responses", headers=upgrade)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "websocket_not_supported"
    assert backend.chat_requests() == []


def sign_in_headers_never_reach_the_gateway(stack: Proxied) -> None:
    """A client's forged admin sign-in headers are dropped by the proxy.

    Sent straight to the gateway they would be refused as untrusted
    (`untrusted_proxy_headers`); dropped, the gateway sees no sign-in at all.
    """
    forged = {
        "X-Gateway-User": "mallory",
        "X-Gateway-Role": "admin",
        "X-Gateway-Tenant": "*",
        "X-Gateway-Key-Prefixes": "",
        "X-Gateway-Proxy-Secret": "guessed-secret-0123456",
    }
    with stack.http() as client:
        answer = client.get(f"{stack.base_url}/gateway/tenants", headers=forged)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "missing_admin_token"


def uploads_pass_the_body_limit_up_to_the_file_cap(sdk: openai.OpenAI) -> None:
    data = os.urandom(OVER_BODY_LIMIT)
    uploaded = sdk.files.create(file=("big.bin", data), purpose="user_data")
    assert uploaded.bytes == len(data)
    assert sdk.files.content(uploaded.id).read() == data
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.files.create(file=("bigger.bin", b"x" * (FILE_CAP + 1)), purpose="user_data")
    error = assert_openai_error(caught.value, 413)
    assert error["param"] == "file" and f"({FILE_CAP} bytes)" in error["message"]  # the gateway's
    assert uploaded.id in [file.id for file in sdk.files.list()]


def upload_declared_past_the_proxy_limit_is_refused_at_once(stack: Proxied) -> dict[str, Any]:
    """A length over the proxy's upload limit gets its 413 before any of the body is sent."""
    url = urlsplit(stack.base_url)
    if url.scheme == "https":
        context = stack.verify if isinstance(stack.verify, ssl.SSLContext) else None
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            url.hostname, url.port, context=context, timeout=30
        )
    else:
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.putrequest("POST", "/v1/files")
        connection.putheader("Authorization", f"Bearer {TEST_KEY}")
        connection.putheader("Content-Type", "multipart/form-data; boundary=x")
        connection.putheader("Content-Length", str(OVER_UPLOAD_LIMIT))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
        assert response.getheader("Content-Type", "").startswith("application/json")
        return json.loads(response.read())
    finally:
        connection.close()
