"""Backend failures reach the client with a fitting status, in the OpenAI error shape.

Each fault is tried on the JSON path and on the streaming path (where it
happens before the first byte, so it is still a plain HTTP error), and in
each case nothing is stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests import fakebackend as fb
from tests.conftest import sdk_for
from tests.integration.helpers import (
    MODEL,
    assert_nothing_stored,
    assert_openai_error,
    closed_port,
)

BACKEND_400 = {
    "error": {
        "message": "This model's maximum context length is 4096 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}
RATE_LIMITED = {"error": {"message": "Slow down.", "type": "rate_limit_error", "code": None}}
HANG_SECONDS = 5.0
READ_TIMEOUT = 0.5


@pytest.fixture(params=[False, True], ids=["json", "stream"])
def send(request: pytest.FixtureRequest) -> Callable[[openai.OpenAI], Any]:
    """Send one create request, JSON or streamed (and read to the end)."""

    def call(client: openai.OpenAI) -> Any:
        if not request.param:
            return client.responses.create(model=MODEL, input="Hi")
        with client.responses.create(model=MODEL, input="Hi", stream=True) as events:
            return list(events)

    return call


def failure(app: Any, send: Callable[[openai.OpenAI], Any], error_class: type) -> Any:
    """Send through the SDK, expect `error_class`; nothing may be stored."""
    with pytest.raises(error_class) as caught:
        send(sdk_for(app))
    assert_nothing_stored(app)
    return caught.value


def test_backend_500_is_a_500(app, backend, send):
    backend.enqueue(fb.error(500))
    error = assert_openai_error(failure(app, send, openai.InternalServerError), 500)
    assert error["type"] == "server_error"
    assert error["message"] == "Backend 'default' failed (HTTP 500): fake error"


PYTHON_TRACEBACK = """Traceback (most recent call last):
  File "/srv/model-server/.venv/lib/python3.11/site-packages/server/app.py", line 88, in chat
    output = engine.generate(request)
  File "/srv/model-server/engine.py", line 12, in generate
    raise RuntimeError("CUDA out of memory")
RuntimeError: CUDA out of memory"""


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (fb.error(500, PYTHON_TRACEBACK), "RuntimeError: CUDA out of memory"),
        (
            fb.error(500, {"error": {"message": PYTHON_TRACEBACK}}),
            "RuntimeError: CUDA out of memory",
        ),
        (
            fb.raw(
                502, b"<html><title>502 Bad Gateway</title><h1>Bad Gateway</h1></html>", "text/html"
            ),
            "502 Bad Gateway Bad Gateway",
        ),
        (fb.error(503, "x" * 5000), "x" * 200),
        (fb.error(500, ""), None),
    ],
    ids=["traceback", "traceback-in-json", "html", "long", "empty"],
)
def test_backend_failure_bodies_reach_the_client_short_and_without_internals(
    app, backend, send, reply, said
):
    backend.enqueue(reply)
    error = assert_openai_error(failure(app, send, openai.APIStatusError), reply.status)
    message = error["message"]
    assert message.startswith(f"Backend 'default' failed (HTTP {reply.status})")
    assert said is None and message.endswith(")") or said in message
    assert "Traceback" not in message and "/srv/" not in message and "<" not in message
    assert len(message) <= 400


def test_backend_429_passes_on_retry_after(app, backend, send):
    backend.enqueue(fb.error(429, RATE_LIMITED, headers={"Retry-After": "7"}))
    exc = failure(app, send, openai.RateLimitError)
    error = assert_openai_error(exc, 429)
    assert exc.response.headers["retry-after"] == "7"
    assert error["message"] == "Slow down."


def test_backend_400_is_passed_on_with_its_message(app, backend, send):
    backend.enqueue(fb.error(400, BACKEND_400))
    error = assert_openai_error(failure(app, send, openai.BadRequestError), 400)
    assert error["message"] == BACKEND_400["error"]["message"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "context_length_exceeded"


def test_backend_sending_invalid_json_is_a_502(app, backend, send):
    backend.enqueue(fb.raw(200, b"<html>not json</html>", "text/html"))
    assert_openai_error(failure(app, send, openai.APIStatusError), 502)


def test_backend_down_is_a_503(make_app, send):
    app = make_app(backends=[{"base_url": f"http://127.0.0.1:{closed_port()}/v1"}])
    assert_openai_error(failure(app, send, openai.APIStatusError), 503)


def test_backend_hanging_past_the_read_timeout_is_a_quick_504(make_app, backend, send):
    app = make_app(backends=[{"base_url": backend.base_url, "read_timeout": READ_TIMEOUT}])
    backend.enqueue(fb.hang(HANG_SECONDS))
    started = time.monotonic()
    assert_openai_error(failure(app, send, openai.APIStatusError), 504)
    assert time.monotonic() - started < READ_TIMEOUT + 2


def test_backend_redirect_is_a_502_naming_where_it_pointed(app, backend, send):
    # A Chat call is not followed to another URL: the operator should set the final one.
    backend.enqueue(fb.raw(307, b"", headers={"Location": "https://elsewhere.test/v1"}))
    error = assert_openai_error(failure(app, send, openai.APIStatusError), 502)
    assert "redirected to https://elsewhere.test/v1" in error["message"]
    assert len(backend.chat_requests()) == 1


def test_a_stream_cut_before_its_first_read_is_a_cut_not_a_failure(backend):
    """A cancel can close the call between its headers and its first read (a race that
    once failed the response instead of cancelling it)."""
    from app.auth.principal import ANONYMOUS_PRINCIPAL
    from app.backends import CallCut
    from app.backends.dialects.chat import ChatBackend
    from app.config import BackendSettings
    from app.protocol.chat.request import ChatRequest

    chat = ChatBackend(BackendSettings(base_url=backend.base_url, pool_size=1))
    backend.enqueue(fb.text("one two three", delay=0.2))
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    stream = chat.open_stream(ChatRequest(body=body), ANONYMOUS_PRINCIPAL)
    stream.close()
    with pytest.raises(CallCut):
        list(stream.reads(1.0))
