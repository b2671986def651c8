"""The gateway as operators run it: gunicorn with two gevent workers, as a process.

A `previous_response_id` chain must continue on whichever worker a request
lands on (each request opens a new connection, and gunicorn's access log
names the worker pid), on SQLite and on PostgreSQL; streams must overlap
inside one worker; and bad configurations must stop the start with a
message naming the key.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest
import requests

from tests.e2e.gateway_process import ROOT, START_TIMEOUT, Gateway, free_port
from tests.events import assert_valid_event_stream
from tests.fakebackend import hang, text
from tests.integration.helpers import sse_events

pytestmark = pytest.mark.slow

CLIENT_KEY = "sk-live-" + "k3yMaterial" * 4
MAX_CHAIN_TURNS = 40


def fresh_client(gateway: Gateway) -> openai.OpenAI:
    """A client whose one request uses a new connection, so any worker may take it."""
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


def worker_of_each_request(gateway: Gateway) -> list[int]:
    """Worker pids of the POST /v1/responses lines of the access log, in order."""
    lines = re.findall(r'"POST /v1/responses HTTP/1.1" 200 .* pid=<?(\d+)>?', gateway.log_text())
    return [int(pid) for pid in lines]


def wait_for_log_lines(gateway: Gateway, count: int) -> list[int]:
    deadline = time.monotonic() + 5
    while len(pids := worker_of_each_request(gateway)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_chain_continues_across_workers(request, start_gateway, backend, store):
    env = {}
    if store == "postgres":
        env = {
            "SESSION_STORE_TYPE": "postgres",
            "SESSION_STORE_DSN": request.getfixturevalue("postgres_dsn"),
        }
    gateway = start_gateway(**env)
    previous, turns = None, 0
    while turns < MAX_CHAIN_TURNS:
        backend.enqueue(text(f"answer {turns}"))
        with fresh_client(gateway) as client:
            response = client.responses.create(
                model="fake-model", input=f"question {turns}", previous_response_id=previous
            )
        previous, turns = response.id, turns + 1
        messages = backend.chat_requests()[-1]["messages"]
        expected = []
        for turn in range(turns):
            expected.append({"role": "user", "content": f"question {turn}"})
            if turn < turns - 1:
                expected.append({"role": "assistant", "content": f"answer {turn}"})
        assert messages == expected
        if turns >= 4 and len(set(wait_for_log_lines(gateway, turns))) == 2:
            break
    assert len(set(worker_of_each_request(gateway))) == 2, "the chain never reached both workers"


def test_stream_is_valid_and_readable_from_another_connection_at_once(start_gateway, backend):
    gateway = start_gateway()
    backend.enqueue(text("Streamed through gunicorn.", delay=0.01))
    with requests.post(
        gateway.url + "/v1/responses",
        json={"model": "fake-model", "input": "hi", "stream": True},
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        stream=True,
        timeout=30,
    ) as reply:
        assert reply.headers["X-Accel-Buffering"] == "no"
        events = sse_events(reply.iter_lines(decode_unicode=True))
    final = assert_valid_event_stream(events)
    assert final.output_text == "Streamed through gunicorn."
    for _ in range(4):  # several new connections: both workers answer it
        with fresh_client(gateway) as client:
            assert client.responses.retrieve(final.id).status == "completed"


def test_streams_overlap_inside_the_workers(start_gateway, backend):
    gateway = start_gateway()
    count, chunks, delay = 20, 10, 0.2
    backend.default_reply = text("x" * chunks * 4, chunk_size=4, delay=delay)
    finished: list[bool] = []

    def one_stream() -> None:
        with fresh_client(gateway) as client:
            stream = client.responses.create(model="fake-model", input="hi", stream=True)
            finished.append(any(event.type == "response.completed" for event in stream))

    started = time.monotonic()
    threads = [threading.Thread(target=one_stream) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.monotonic() - started
    assert finished == [True] * count
    assert elapsed < count * chunks * delay / 4, f"streams did not overlap: {elapsed:.1f}s"


def test_metrics_add_up_every_worker(start_gateway, backend):
    gateway = start_gateway()
    sent = 0
    while sent < MAX_CHAIN_TURNS and (sent < 4 or len(set(wait_for_log_lines(gateway, sent))) < 2):
        with fresh_client(gateway) as client:
            client.responses.create(model="fake-model", input="hi")
        sent += 1
    assert len(set(worker_of_each_request(gateway))) == 2
    exposition = requests.get(gateway.url + "/metrics", timeout=5).text
    counted = re.search(
        r'gateway_requests_total\{model="fake-model",route="/v1/responses",status="200"\} (\S+)',
        exposition,
    )
    assert counted and float(counted.group(1)) == sent, exposition


def test_memory_store_is_refused_with_two_workers(start_gateway):
    gateway = start_gateway(workers=2, wait=False, SESSION_STORE_TYPE="memory")
    assert gateway.wait_for_exit() != 0
    assert "SESSION_STORE_TYPE" in gateway.log_text()


def test_memory_store_serves_with_one_worker(start_gateway, backend):
    gateway = start_gateway(workers=1, SESSION_STORE_TYPE="memory")
    with fresh_client(gateway) as client:
        first = client.responses.create(model="fake-model", input="one")
        second = client.responses.create(
            model="fake-model", input="two", previous_response_id=first.id
        )
    assert second.previous_response_id == first.id


def test_bad_backend_url_stops_the_start_naming_the_variable(start_gateway):
    gateway = start_gateway(wait=False, BACKEND_URL="http://127.0.0.1:9/v1/wrong")
    assert gateway.wait_for_exit() != 0
    assert "BACKEND_URL" in gateway.log_text()


def test_client_key_never_reaches_the_log_or_the_database(start_gateway, backend, tmp_path):
    gateway = start_gateway()
    with fresh_client(gateway) as client:
        first = client.responses.create(model="fake-model", input="hi")
        client.responses.create(model="fake-model", input="again", previous_response_id=first.id)
        list(client.responses.create(model="fake-model", input="stream", stream=True))
    assert backend.requests[-1].headers["authorization"] == f"Bearer {CLIENT_KEY}"
    gateway.stop()
    assert CLIENT_KEY not in gateway.log_text()
    for path in tmp_path.glob("gateway.db*"):
        assert CLIENT_KEY.encode() not in path.read_bytes()


def test_flask_dev_server_serves_the_same_app(tmp_path, backend):
    port = free_port()
    env = {
        **os.environ,
        "HOST_PORT": f"127.0.0.1:{port}",
        "OPENAI_API_ENDPOINT": backend.base_url,
        "SESSION_STORE_DSN": str(tmp_path / "dev.db"),
    }
    log = (tmp_path / "dev.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "--dev"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                reply = requests.post(
                    f"http://127.0.0.1:{port}/v1/responses",
                    json={"model": "fake-model", "input": "hi"},
                    timeout=5,
                )
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            raise AssertionError((tmp_path / "dev.log").read_text())
        assert reply.status_code == 200
        assert reply.json()["output"][0]["content"][0]["text"] == "Hello from the fake backend."
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def sigterm_during_a_stream(
    gateway: Gateway, backend: Any, while_stopping: Callable[[], None] = lambda: None
) -> list[str]:
    """Stream a slow answer and send SIGTERM at its first delta; return the lines after it."""
    backend.enqueue(text("x" * 40, chunk_size=4, delay=0.2))
    with requests.post(
        gateway.url + "/v1/responses",
        json={"model": "fake-model", "input": "hi", "stream": True},
        stream=True,
        timeout=30,
    ) as reply:
        lines = reply.iter_lines(decode_unicode=True)
        for line in lines:
            if "response.output_text.delta" in line:
                gateway.process.send_signal(signal.SIGTERM)
                break
        while_stopping()
        return list(lines)


def test_shutdown_lets_a_stream_in_flight_finish(start_gateway, backend):
    gateway = start_gateway(GATEWAY_GRACEFUL_TIMEOUT="5")
    rest = sigterm_during_a_stream(gateway, backend)
    assert any("response.completed" in line for line in rest)
    assert gateway.wait_for_exit(timeout=20) == 0  # bounded by the graceful timeout


def idle_keepalive_connection(gateway: Gateway) -> socket.socket:
    """A connection that was answered once and is kept open, idle, as pooling clients do."""
    connection = socket.create_connection(("127.0.0.1", gateway.port), timeout=30)
    connection.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += connection.recv(4096)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    body = head.partition(b"\r\n\r\n")[2]
    while len(body) < length:
        body += connection.recv(4096)
    assert b"connection: close" not in head.lower()
    return connection


def test_stop_ends_with_the_last_stream_though_an_idle_connection_stays(start_gateway, backend):
    gateway = start_gateway(workers=1, GATEWAY_GRACEFUL_TIMEOUT="30")
    idle = idle_keepalive_connection(gateway)

    def idle_closed() -> None:
        assert idle.recv(1) == b"", "the idle connection was not closed on the stop"

    rest = sigterm_during_a_stream(gateway, backend, while_stopping=idle_closed)
    ended = time.monotonic()
    assert any("response.completed" in line for line in rest)
    assert gateway.wait_for_exit(timeout=30) == 0
    # gunicorn's own wait ended with the stream, not with the 30 s graceful timeout.
    assert time.monotonic() - ended < 5, gateway.log_text()


def test_a_background_response_whose_worker_is_killed_fails_for_its_followers(
    start_gateway, backend
):
    lease = 2.0
    gateway = start_gateway(workers=2, GATEWAY_BACKGROUND_LEASE=str(lease))
    backend.enqueue(hang(60.0))
    queued = fresh_client(gateway).responses.create(
        model="fake-model", input="work", background=True
    )
    assert backend.wait_for_requests(1, 10)
    (runner,) = wait_for_log_lines(gateway, 1)  # the worker that took the POST runs it
    os.kill(runner, signal.SIGKILL)
    killed_at = time.monotonic()
    with requests.get(
        f"{gateway.url}/v1/responses/{queued.id}",
        params={"stream": "true"},
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},  # its owner: another key gets a 404
        stream=True,
        timeout=30,
    ) as reply:
        events = sse_events(reply.iter_lines(decode_unicode=True))
    waited = time.monotonic() - killed_at
    final = assert_valid_event_stream(events)
    assert events[-1]["type"] == "response.failed"
    assert "worker running it ended" in final.error.message
    assert waited < lease + 5, f"the follower waited {waited:.1f}s for a dead runner"
    stored = fresh_client(gateway).responses.retrieve(queued.id).model_dump()
    assert stored["status"] == "failed"


def test_workers_sweep_the_store_beside_their_requests(start_gateway, backend, tmp_path):
    gateway = start_gateway(GATEWAY_STORE_TTL="1h", GATEWAY_SWEEP_INTERVAL="0.3")
    kept = fresh_client(gateway).responses.create(model="fake-model", input="kept")
    old = fresh_client(gateway).responses.create(model="fake-model", input="old")
    store = gateway.env["SESSION_STORE_DSN"]
    with sqlite3.connect(store) as connection:
        connection.execute(
            "UPDATE responses SET created_at = created_at - 7200 WHERE id = ?", (old.id,)
        )

    def count(response_id: str) -> int:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as connection:
            query = "SELECT count(*) FROM responses WHERE id = ?"
            return connection.execute(query, (response_id,)).fetchone()[0]

    deadline = time.monotonic() + 15
    while count(old.id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert count(old.id) == 0, gateway.log_text()
    assert count(kept.id) == 1
    assert "store swept: responses=1" in gateway.log_text()
