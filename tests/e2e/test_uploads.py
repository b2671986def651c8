"""Uploads through gunicorn's gevent worker: streamed to disk, never held in memory.

A 96 MB upload, sent chunked so that no length warns the gateway, goes to
disk as it arrives: the worker's peak memory grows by a fraction of it. The
download is the same bytes, again without the worker reading them into
memory. A chunked upload over the cap is cut off with the gateway's 413 and
leaves nothing on disk, as does a client that goes away midway; the worker
goes on serving.
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests

from tests.e2e.gateway_process import START_TIMEOUT
from tests.processes import proc_status, worker_pids

pytestmark = pytest.mark.slow

CHUNK = b"0123456789abcdef" * 4096  # 64 KiB
CHUNKS = 1536  # 96 MiB
# What a worker may grow by while it streams 96 MiB in or out (its buffers, the
# parser's, the allocator's slack): a fraction of the upload.
MAX_GROWTH_KB = 24 * 1024
TIMEOUT = 120.0


def chunks(count: int, boundary: str, purpose: str = "user_data") -> Iterator[bytes]:
    """A multipart upload of `count` chunks, produced as it is sent (requests sends it chunked)."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n{purpose}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    for _ in range(count):
        yield CHUNK
    yield f"\r\n--{boundary}--\r\n".encode()


def peak_kb(pid: int) -> int:
    return int(proc_status(pid)["VmHWM"].split()[0])


def upload(url: str, count: int) -> requests.Response:
    boundary = "gateway-upload-test"
    return requests.post(
        f"{url}/v1/files",
        data=chunks(count, boundary),
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Authorization": "Bearer sk-upload-test",
        },
        timeout=TIMEOUT,
    )


def test_a_large_upload_streams_to_disk_and_back_without_growing_the_worker(
    start_gateway, tmp_path: Path
):
    files_dir = tmp_path / "files"
    gateway = start_gateway(workers=1, FILE_STORE_BASE_DIR=str(files_dir))
    (worker,) = worker_pids(gateway.process.pid, expected=1, timeout=START_TIMEOUT)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-upload-test", max_retries=0)
    client.files.create(file=("warm.txt", b"warm up"), purpose="user_data")
    before = peak_kb(worker)

    answer = upload(gateway.url, CHUNKS)
    assert answer.status_code == 200, answer.text
    file = answer.json()
    assert file["bytes"] == len(CHUNK) * CHUNKS
    after_upload = peak_kb(worker)
    assert after_upload - before < MAX_GROWTH_KB, (before, after_upload)

    expected = hashlib.sha256(CHUNK * CHUNKS).hexdigest()
    stored = files_dir / file["id"][-2:] / file["id"]
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == expected
    digest = hashlib.sha256()
    with requests.get(
        f"{gateway.url}/v1/files/{file['id']}/content",
        headers={"Authorization": "Bearer sk-upload-test"},
        stream=True,
        timeout=TIMEOUT,
    ) as download:
        assert download.status_code == 200
        assert int(download.headers["Content-Length"]) == file["bytes"]
        for piece in download.iter_content(1 << 20):
            digest.update(piece)
    assert digest.hexdigest() == expected
    assert peak_kb(worker) - before < MAX_GROWTH_KB, (before, peak_kb(worker))


def test_a_chunked_upload_over_the_cap_is_cut_off_and_leaves_nothing(start_gateway, tmp_path: Path):
    files_dir = tmp_path / "files"
    cap = 4 * 1024 * 1024
    gateway = start_gateway(
        workers=1, FILE_STORE_BASE_DIR=str(files_dir), GATEWAY_MAX_FILE_BYTES=str(cap)
    )
    try:
        answer = upload(gateway.url, count=cap // len(CHUNK) + 16)
    except requests.ConnectionError:
        pytest.fail("the gateway closed the connection instead of answering 413")
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    assert (error["param"], error["code"]) == ("file", "request_too_large")
    assert [p for p in files_dir.rglob("*") if p.is_file()] == []

    fits = upload(gateway.url, count=cap // len(CHUNK))
    assert fits.status_code == 200, fits.text
    assert fits.json()["bytes"] == cap


def test_a_client_that_goes_away_midway_leaves_nothing_and_the_worker_serves_on(
    start_gateway, tmp_path: Path
):
    files_dir = tmp_path / "files"
    gateway = start_gateway(workers=1, FILE_STORE_BASE_DIR=str(files_dir))
    boundary = "gone-midway"
    head = next(chunks(0, boundary))
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=TIMEOUT) as sock:
        sock.sendall(
            (
                "POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(head) + 64 * len(CHUNK)}\r\n\r\n"
            ).encode()
            + head
            + CHUNK * 8
        )
        deadline = time.monotonic() + TIMEOUT
        while not any(p.is_file() for p in files_dir.rglob("*.part")):
            assert time.monotonic() < deadline, "the upload never reached the disk"
            time.sleep(0.05)
    deadline = time.monotonic() + TIMEOUT
    while any(p.is_file() for p in files_dir.rglob("*")):
        assert time.monotonic() < deadline, "the cut upload's part file was left behind"
        time.sleep(0.05)
    fits = upload(gateway.url, count=4)
    assert fits.status_code == 200, fits.text
