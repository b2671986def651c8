"""What must hold through any reverse proxy shipped in front of the gateway (nginx, Caddy).

Each check takes the proxy's stack (its /v1 URL and an HTTP client trusting
its certificate) or an openai client through it, and the fake backend:
tests/e2e/test_nginx.py and test_caddy.py run every one of them.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import openai

from tests import fakebackend as fb
from tests.conftest import TEST_KEY
from tests.integration.helpers import MODEL, assert_valid_stream, create, sse_events, stream


class Proxied(Protocol):
    base_url: str  # the proxy's /v1 URL

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
