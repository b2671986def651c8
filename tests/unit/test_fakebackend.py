"""Tests for the scriptable fake Chat Completions backend."""

import json
import threading
import time

import openai
import pytest
import requests

from tests import fakebackend as fb


@pytest.fixture
def backend():
    with fb.FakeBackend() as server:
        yield server


@pytest.fixture
def client(backend):
    return openai.OpenAI(base_url=backend.base_url, api_key="x", max_retries=0, timeout=10)


def chat(**extra):
    """A minimal chat completion request body."""
    return {"model": "m1", "messages": [{"role": "user", "content": "hi"}], **extra}


def sse_events(response):
    """Data payloads of an SSE response, read until the server stops sending."""
    return [line[6:] for line in response.iter_lines(decode_unicode=True) if line]


def test_models_lists_configured_models():
    with fb.FakeBackend(models=["a", "b"]) as backend:
        body = requests.get(f"{backend.base_url}/models", timeout=5).json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["a", "b"]


def test_text_non_stream(backend, client):
    backend.enqueue(fb.text("Paris is the capital.", model="served-model"))
    completion = client.chat.completions.create(**chat())
    assert completion.choices[0].message.content == "Paris is the capital."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "served-model"
    assert completion.usage.completion_tokens == 4
    assert completion.usage.total_tokens == 14


def test_reasoning_in_configured_field(backend):
    backend.enqueue(fb.text("42", reasoning="think hard", reasoning_field="reasoning"))
    body = requests.post(backend.chat_url, json=chat(), timeout=5).json()
    message = body["choices"][0]["message"]
    assert message["reasoning"] == "think hard"
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 2


def test_text_stream_without_usage(backend, client):
    backend.enqueue(fb.text("Hello there, streaming world", reasoning="hmm ok"))
    chunks = list(client.chat.completions.create(**chat(stream=True)))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    assert "".join(d.content or "" for d in deltas) == "Hello there, streaming world"
    assert "".join((d.model_extra or {}).get("reasoning_content", "") for d in deltas) == "hmm ok"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    assert all(c.model == "m1" for c in chunks)


def test_text_stream_with_usage(backend, client):
    backend.enqueue(fb.length("cut short"))
    stream = client.chat.completions.create(
        **chat(stream=True, stream_options={"include_usage": True})
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 2
    assert chunks[-2].choices[0].finish_reason == "length"


def test_tool_calls_stream_reassembles(backend, client):
    calls = [
        {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}', "id": "call_1"},
        {"name": "get_time", "arguments": {"tz": "UTC"}},
    ]
    backend.enqueue(fb.tool_calls(calls, content="Let me check."))
    built: dict[int, dict] = {}
    fragments = 0
    for chunk in client.chat.completions.create(**chat(stream=True)):
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            slot = built.setdefault(call.index, {"id": call.id, "name": "", "arguments": ""})
            slot["name"] += call.function.name or ""
            slot["arguments"] += call.function.arguments or ""
            fragments += 1
        if chunk.choices and chunk.choices[0].finish_reason:
            assert chunk.choices[0].finish_reason == "tool_calls"
    assert built[0] == {"id": "call_1", "name": "get_weather", "arguments": calls[0]["arguments"]}
    assert built[1]["id"].startswith("call_")
    assert json.loads(built[1]["arguments"]) == {"tz": "UTC"}
    assert fragments >= 6


def test_tool_calls_non_stream(backend, client):
    backend.enqueue(fb.tool_calls([{"name": "f", "arguments": "{}", "id": "call_x"}]))
    choice = client.chat.completions.create(**chat()).choices[0]
    assert choice.message.content is None
    assert choice.message.tool_calls[0].id == "call_x"
    assert choice.finish_reason == "tool_calls"


def test_error_status_and_headers(backend, client):
    backend.enqueue(fb.error(429, headers={"Retry-After": "7"}), fb.error(503, "overloaded"))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(**chat())
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.response.json()["error"]["message"] == "fake error"
    response = requests.post(backend.chat_url, json=chat(stream=True), timeout=5)
    assert (response.status_code, response.text) == (503, "overloaded")


def test_raw_sends_exact_bytes(backend):
    backend.enqueue(fb.raw(200, b"{not json"))
    response = requests.post(backend.chat_url, json=chat(), timeout=5)
    assert response.content == b"{not json"


def test_cut_stream_ends_without_done(backend):
    backend.enqueue(fb.cut("abcdefghijkl", after_chunks=2))
    events = []
    with (
        pytest.raises(requests.exceptions.ChunkedEncodingError),
        requests.post(backend.chat_url, json=chat(stream=True), stream=True, timeout=5) as resp,
    ):
        for line in resp.iter_lines(decode_unicode=True):
            if line:
                events.append(line[6:])
    assert "[DONE]" not in events
    assert [json.loads(e)["choices"][0]["delta"]["content"] for e in events] == ["abcd", "efgh"]


def test_cut_stream_raises_in_sdk(backend, client):
    backend.enqueue(fb.cut())
    with pytest.raises(Exception) as caught:  # noqa: B017 - wrapped or not, by SDK version
        list(client.chat.completions.create(**chat(stream=True)))
    assert type(caught.value).__name__ in {"APIConnectionError", "RemoteProtocolError"}


def test_cut_non_stream_is_incomplete(backend):
    backend.enqueue(fb.cut())
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.post(backend.chat_url, json=chat(), timeout=5)


def test_hang_does_not_block_other_requests(backend):
    backend.enqueue(fb.hang(5))
    outcome = []
    hung = threading.Thread(target=_post_and_capture, args=(backend.chat_url, outcome))
    hung.start()
    assert backend.wait_for_requests(1, timeout=5)
    started = time.monotonic()
    body = requests.post(backend.chat_url, json=chat(), timeout=5).json()
    assert time.monotonic() - started < 0.5
    assert body["choices"][0]["message"]["content"] == "Hello from the fake backend."
    hung.join()
    assert isinstance(outcome[0], requests.exceptions.ReadTimeout)
    assert backend.wait_for_disconnect(timeout=2)


def _post_and_capture(url, outcome):
    try:
        outcome.append(requests.post(url, json=chat(), timeout=0.3))
    except requests.RequestException as exc:
        outcome.append(exc)


def test_slow_first_byte_delays_reply(backend):
    backend.enqueue(fb.slow_first_byte(0.3, fb.text("late")))
    started = time.monotonic()
    body = requests.post(backend.chat_url, json=chat(), timeout=5).json()
    assert time.monotonic() - started >= 0.3
    assert body["choices"][0]["message"]["content"] == "late"


def test_client_disconnect_is_counted(backend):
    backend.enqueue(fb.text("word " * 200, delay=0.01))
    response = requests.post(backend.chat_url, json=chat(stream=True), stream=True, timeout=5)
    lines = response.iter_lines()
    assert next(lines).startswith(b"data: ")
    response.close()
    assert backend.wait_for_disconnect(timeout=5)
    assert backend.disconnects == 1


def test_requests_are_recorded_before_replying(backend):
    backend.enqueue(fb.error(500))
    headers = {"Authorization": "Bearer secret"}
    requests.post(f"{backend.chat_url}?x=1", json=chat(), headers=headers, timeout=5)
    bad = requests.post(backend.chat_url, data=b"{oops", timeout=5)
    missing = requests.post(f"{backend.base_url}/completions", json={}, timeout=5)
    assert (bad.status_code, missing.status_code) == (400, 404)
    first, second, third = backend.requests
    assert (first.method, first.path) == ("POST", "/v1/chat/completions?x=1")
    assert first.headers["authorization"] == "Bearer secret"
    assert first.json == chat() and json.loads(first.body) == chat()
    assert (second.body, second.json) == (b"{oops", None)
    assert third.path == "/v1/completions"
    assert backend.chat_requests() == [chat()]


def test_chunked_request_body_is_read(backend):
    parts = iter([b'{"model": "m1", ', b'"messages": []}'])
    requests.post(backend.chat_url, data=parts, timeout=5)
    assert backend.chat_requests() == [{"model": "m1", "messages": []}]


def test_reset_restores_initial_state(backend):
    backend.default_reply = fb.text("custom")
    backend.enqueue(fb.error(500))
    requests.get(f"{backend.base_url}/models", timeout=5)
    backend.reset()
    assert backend.requests == []
    body = requests.post(backend.chat_url, json=chat(), timeout=5).json()
    assert body["choices"][0]["message"]["content"] == "Hello from the fake backend."


def test_embeddings_are_unit_bags_of_words_and_can_be_made_to_fail(backend):
    url = f"{backend.base_url}/embeddings"
    answer = requests.post(
        url, json={"model": "e", "input": ["cats purr", "Cats PURR!"]}, timeout=5
    )
    first, second = (item["embedding"] for item in answer.json()["data"])
    assert first == second and len(first) == fb.EMBEDDING_DIMENSIONS
    assert abs(sum(x * x for x in first) - 1.0) < 1e-9
    backend.fail_embeddings(1)
    assert requests.post(url, json={"input": ["x"]}, timeout=5).status_code == 500
    assert requests.post(url, json={"input": ["x"]}, timeout=5).status_code == 200
    assert requests.post(url, json={"input": [1]}, timeout=5).status_code == 400
    assert len(backend.embedding_requests()) == 4
