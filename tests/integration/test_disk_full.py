"""A full disk under the SQLite store: writes refused in the OpenAI shape, reads served.

The store lives on a small tmpfs mounted for the test, which is then
filled to the last byte. Writes fail as the file system refuses them
(SQLite's "database or disk is full"): a response is answered 507
`insufficient_storage` and not stored, a stream ends in `response.failed`
saying the store is full, a conversation is refused; everything stored
before is still read back, /health stays 200 and /ready says 503. Once
space is freed, writes work again.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests import fakebackend as fb
from tests.conftest import sdk_for
from tests.integration.helpers import assert_openai_error, create, retrieve, stored_count, stream

DISK_BYTES = 4 * 1024 * 1024
BIG_INPUT = "x" * 200_000
# The WAL file may reuse space it already has for a write or two before one needs more.
MAX_WRITES_UNTIL_FULL = 50


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs mounted in the test's directory (needs root, as CI is)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0 or shutil.which("umount") is None:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the file system refuses another byte."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_full_disk_refuses_writes_and_keeps_serving_reads(make_app, backend, small_disk):
    app = make_app(store_dsn=str(small_disk / "gateway.db"))
    sdk, client = sdk_for(app), app.test_client()
    stored = []
    for answer in ("One.", "Two."):
        backend.enqueue(fb.text(answer))
        stored.append(create(sdk, input="Hi").body)
    conversation = sdk.conversations.create(items=[{"role": "user", "content": "Hello."}])
    filler = fill(small_disk)

    for _ in range(MAX_WRITES_UNTIL_FULL):
        backend.enqueue(fb.text("Not kept."))
        try:
            stored.append(create(sdk, input=BIG_INPUT).body)
        except openai.APIStatusError as exc:
            error = assert_openai_error(exc, 507)
            break
    else:
        pytest.fail(f"{MAX_WRITES_UNTIL_FULL} large writes fit on a full disk")
    assert (error["type"], error["code"]) == ("server_error", "insufficient_storage")
    assert "store is full" in error["message"]
    assert stored_count(app, "responses") == len(stored)  # the refused one left no trace

    backend.enqueue(fb.text("Not kept either."))
    failed = stream(sdk, input=BIG_INPUT).response
    assert failed.status == "failed" and "store is full" in failed.error.message
    with pytest.raises(openai.APIStatusError) as refused:
        sdk.conversations.create(items=[{"role": "user", "content": BIG_INPUT}])
    assert_openai_error(refused.value, 507)

    assert [retrieve(sdk, body["id"]) for body in stored] == stored
    items = sdk.conversations.items.list(conversation.id)
    assert [item.content[0].text for item in items.data] == ["Hello."]
    assert client.get("/health").status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 503 and "full" in ready.get_json()["store"]["error"]

    filler.unlink()
    backend.enqueue(fb.text("Kept again."))
    assert create(sdk, input=BIG_INPUT).response.status == "completed"
    assert client.get("/ready").status_code == 200
    assert [retrieve(sdk, body["id"]) for body in stored] == stored
