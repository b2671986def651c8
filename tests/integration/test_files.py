"""/v1/files through the openai SDK: uploads kept whole on disk, their metadata in the store.

Every object is checked against the SDK's own types. Every refusal is an
OpenAI-shaped error that leaves nothing behind: no row, no bytes, no part
file. The store runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types import FileDeleted, FileObject

from app.services.sweep import sweep
from app.store import db
from app.store.blobs import ORPHAN_AGE
from app.store.models import StoredFile
from tests.conftest import sdk_for
from tests.integration.helpers import assert_openai_error

DAY = 24 * 3600


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    return tmp_path / "files"


@pytest.fixture
def files_app(make_app, fresh_store, files_dir):
    return make_app(file_store_base_dir=str(files_dir), **fresh_store)


@pytest.fixture
def files_sdk(files_app) -> openai.OpenAI:
    return sdk_for(files_app)


def valid_file(body: Any) -> FileObject:
    data = body.model_dump() if hasattr(body, "model_dump") else body
    assert set(data) == {
        "id",
        "object",
        "bytes",
        "created_at",
        "expires_at",
        "filename",
        "purpose",
        "status",
        "status_details",
    }
    return FileObject.model_validate(data, strict=True)


def on_disk(files_dir: Path) -> list[str]:
    """Every file under the files directory (bytes and part files alike)."""
    return sorted(p.name for p in files_dir.rglob("*") if p.is_file())


def file_rows() -> int:
    with db.connection_context():
        return StoredFile.select().count()


def assert_left_nothing(files_dir: Path, rows: int = 0) -> None:
    assert file_rows() == rows
    assert len(on_disk(files_dir)) == rows


def test_upload_retrieve_download_list_and_delete(files_app, files_sdk, files_dir):
    data = "naïve café, 日本語\n".encode() * 1000
    uploaded = valid_file(files_sdk.files.create(file=("notes.md", data), purpose="assistants"))
    assert uploaded.id.startswith("file-")
    assert (uploaded.filename, uploaded.bytes, uploaded.purpose) == (
        "notes.md",
        len(data),
        "assistants",
    )
    assert uploaded.status == "processed" and uploaded.expires_at is None
    assert abs(uploaded.created_at - time.time()) < 5
    assert on_disk(files_dir) == [uploaded.id]

    assert valid_file(files_sdk.files.retrieve(uploaded.id)) == uploaded
    download = files_sdk.files.content(uploaded.id)
    assert download.read() == data
    assert download.response.headers["content-type"] == "application/octet-stream"
    assert [valid_file(f) for f in files_sdk.files.list()] == [uploaded]

    deleted = files_sdk.files.delete(uploaded.id)
    FileDeleted.model_validate(deleted.model_dump(), strict=True)
    assert (deleted.id, deleted.deleted, deleted.object) == (uploaded.id, True, "file")
    for call in (
        lambda: files_sdk.files.retrieve(uploaded.id),
        lambda: files_sdk.files.content(uploaded.id),
        lambda: files_sdk.files.delete(uploaded.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        error = assert_openai_error(caught.value, 404)
        assert uploaded.id in error["message"]
    assert files_sdk.files.list().data == []
    assert_left_nothing(files_dir)


def test_an_empty_file_and_binary_bytes_come_back_exactly(files_sdk):
    binary = bytes(range(256)) * 64
    large = os.urandom(3 * 1024 * 1024)  # many reads of the body, and parts of it held at once
    for name, data in (("empty.txt", b""), ("blob.bin", binary), ("large.bin", large)):
        uploaded = valid_file(files_sdk.files.create(file=(name, data), purpose="user_data"))
        assert uploaded.bytes == len(data)
        assert files_sdk.files.content(uploaded.id).read() == data


def test_the_filename_is_kept_without_a_path_and_never_names_the_bytes(files_sdk, files_dir):
    uploaded = files_sdk.files.create(file=("../../etc/passwd", b"x"), purpose="user_data")
    assert uploaded.filename == "passwd"
    stored = [p for p in files_dir.rglob("*") if p.is_file()]
    assert [p.name for p in stored] == [uploaded.id]
    assert stored[0].resolve().is_relative_to(files_dir.resolve())


def test_list_pages_by_cursor_in_either_order_and_filters_by_purpose(files_sdk):
    made = [
        files_sdk.files.create(file=(f"f{n}.txt", b"n"), purpose="batch" if n % 2 else "assistants")
        for n in range(5)
    ]
    ids = [f.id for f in made]
    newest_first = files_sdk.files.list(limit=2)
    assert [f.id for f in newest_first.data] == ids[::-1][:2]
    assert newest_first.has_more is True
    assert [f.id for f in files_sdk.files.list(limit=2)] == ids[::-1]  # the SDK pages on
    assert [f.id for f in files_sdk.files.list(order="asc", limit=3)] == ids
    second = files_sdk.files.list(order="asc", limit=2, after=ids[1])
    assert [f.id for f in second.data] == ids[2:4] and second.has_more is True
    raw = files_sdk.files.with_raw_response.list(order="asc", limit=2, after=ids[1]).http_response
    body = raw.json()
    assert (body["object"], body["first_id"], body["last_id"]) == ("list", ids[2], ids[3])
    assert [f.id for f in files_sdk.files.list(purpose="batch")] == [ids[3], ids[1]]
    assert files_sdk.files.list(purpose="vision").data == []


@pytest.mark.parametrize(
    "query, param",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"order": "sideways"}, "order"),
    ],
)
def test_a_bad_list_query_is_refused(files_sdk, query, param):
    with pytest.raises(openai.BadRequestError) as caught:
        files_sdk.files.list(**query)
    assert assert_openai_error(caught.value, 400)["param"] == param


def test_expiry_is_honoured_and_the_sweep_removes_expired_files_with_their_bytes(
    files_app, files_sdk, files_dir
):
    kept = files_sdk.files.create(file=("kept.txt", b"k"), purpose="assistants")
    batch = valid_file(files_sdk.files.create(file=("in.jsonl", b"{}"), purpose="batch"))
    assert batch.expires_at == batch.created_at + 30 * DAY  # batch files' default, as OpenAI's
    hour = files_sdk.files.create(
        file=("soon.txt", b"s"),
        purpose="user_data",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert hour.expires_at == hour.created_at + 3600

    # Time passes: the hour-long file expired (its row says so), the others did not.
    with files_app.app_context(), db.connection_context():
        db.execute_sql("UPDATE files SET expires_at = 1 WHERE id = " + db.param, (hour.id,))
    with pytest.raises(openai.NotFoundError):
        files_sdk.files.retrieve(hour.id)
    with pytest.raises(openai.NotFoundError):
        files_sdk.files.content(hour.id)
    assert {f.id for f in files_sdk.files.list()} == {kept.id, batch.id}
    assert len(on_disk(files_dir)) == 3  # its bytes wait for the sweep

    blobs = files_app.extensions["services"].blobs
    report = sweep(blobs)
    assert report.files == 1
    assert sorted(on_disk(files_dir)) == sorted([kept.id, batch.id])
    assert file_rows() == 2


def test_the_sweep_removes_bytes_no_row_names_and_abandoned_parts_once_old(
    files_app, files_sdk, files_dir
):
    kept = files_sdk.files.create(file=("kept.txt", b"k"), purpose="assistants")
    blobs = files_app.extensions["services"].blobs
    stray = files_dir / "ab" / "file-stray0000ab"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"left by a worker killed before its commit")
    part = Path(blobs.uploads) / "cut.part"
    part.write_bytes(b"half an upload")
    young = files_dir / "cd" / "file-young0000cd"
    young.parent.mkdir(parents=True, exist_ok=True)
    young.write_bytes(b"an upload committing right now")
    old = time.time() - ORPHAN_AGE - 60
    for path in (stray, part, files_dir / kept.id[-2:] / kept.id):
        os.utime(path, (old, old))

    assert sweep(blobs).stray_bytes == 2
    assert sorted(on_disk(files_dir)) == sorted([kept.id, young.name])
    assert files_sdk.files.content(kept.id).read() == b"k"


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"purpose": "homework"}, "purpose"),
        ({}, "purpose"),
        (
            {
                "purpose": "user_data",
                "expires_after[anchor]": "last_used_at",
                "expires_after[seconds]": "3600",
            },
            "expires_after.anchor",
        ),
        (
            {
                "purpose": "user_data",
                "expires_after[anchor]": "created_at",
                "expires_after[seconds]": "60",
            },
            "expires_after.seconds",
        ),
        (
            {
                "purpose": "user_data",
                "expires_after[anchor]": "created_at",
                "expires_after[seconds]": "31d",
            },
            "expires_after.seconds",
        ),
        ({"purpose": "user_data", "expires_after[anchor]": "created_at"}, "expires_after.seconds"),
        ({"purpose": "user_data", "colour": "blue"}, "colour"),
    ],
)
def test_a_bad_form_field_is_refused_and_nothing_is_kept(files_app, files_dir, fields, param):
    client = files_app.test_client()
    data = {**fields, "file": (io.BytesIO(b"some bytes"), "a.txt")}
    answer = client.post("/v1/files", data=data, headers={"Authorization": "Bearer sk-a"})
    assert answer.status_code == 400, answer.text
    assert answer.json["error"]["param"] == param
    assert answer.json["error"]["type"] == "invalid_request_error"
    assert_left_nothing(files_dir)


def test_the_sdk_sends_a_bad_purpose_and_is_refused(files_app, files_sdk, files_dir):
    with pytest.raises(openai.BadRequestError) as caught:
        files_sdk.files.create(file=("a.txt", b"x"), purpose="homework")  # type: ignore[arg-type]
    assert "homework" in assert_openai_error(caught.value, 400)["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        files_sdk.files.create(
            file=("a.txt", b"x"),
            purpose="user_data",
            expires_after={"anchor": "created_at", "seconds": 31 * DAY},
        )
    assert assert_openai_error(caught.value, 400)["param"] == "expires_after.seconds"
    assert_left_nothing(files_dir)


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(
            lambda c, h: c.post("/v1/files", data={"purpose": "user_data"}, headers=h), id="no file"
        ),
        pytest.param(
            lambda c, h: c.post("/v1/files", json={"purpose": "user_data", "file": "x"}, headers=h),
            id="json body",
        ),
        pytest.param(
            lambda c, h: c.post(
                "/v1/files",
                data={
                    "purpose": "user_data",
                    "file": [(io.BytesIO(b"1"), "one.txt"), (io.BytesIO(b"2"), "two.txt")],
                },
                headers=h,
            ),
            id="two files",
        ),
        pytest.param(
            lambda c, h: c.post(
                "/v1/files",
                data={"purpose": "user_data", "document": (io.BytesIO(b"1"), "one.txt")},
                headers=h,
            ),
            id="file under another name",
        ),
        pytest.param(
            lambda c, h: c.post(
                "/v1/files",
                data={"purpose": "user_data", "file": (io.BytesIO(b"1"), "")},
                headers=h,
            ),
            id="no filename",
        ),
        pytest.param(
            lambda c, h: c.post(
                "/v1/files",
                data=b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a"'
                b"\r\n\r\nabc",
                content_type="multipart/form-data; boundary=xx",
                headers=h,
            ),
            id="cut short",
        ),
        pytest.param(
            lambda c, h: c.post(
                "/v1/files", data=b"abc", content_type="multipart/form-data", headers=h
            ),
            id="no boundary",
        ),
        pytest.param(
            lambda c, h: c.post(
                "/v1/files",
                data={
                    "purpose": "user_data",
                    "expires_after[seconds]": [str(n) for n in range(12)],
                    "file": (io.BytesIO(b"1"), "one.txt"),
                },
                headers=h,
            ),
            id="too many parts",
        ),
        pytest.param(
            lambda c, h: c.post(
                "/v1/files",
                data={"purpose": "u" * (2 * 1024 * 1024), "file": (io.BytesIO(b"1"), "a.txt")},
                headers=h,
            ),
            id="a field too large",
        ),
    ],
)
def test_a_malformed_upload_is_refused_and_nothing_is_kept(files_app, files_dir, send):
    answer = send(files_app.test_client(), {"Authorization": "Bearer sk-a"})
    assert answer.status_code == 400, answer.text
    assert set(answer.json["error"]) == {"message", "type", "param", "code"}
    assert_left_nothing(files_dir)


@pytest.mark.parametrize("chunked", [False, True], ids=["with a length", "chunked"])
def test_a_file_over_the_cap_is_refused_with_413_and_nothing_is_kept(
    make_app, fresh_store, files_dir, chunked
):
    app = make_app(file_store_base_dir=str(files_dir), max_file_bytes=1000, **fresh_store)
    client = app.test_client()
    headers = {"Authorization": "Bearer sk-a"}
    exact = client.post(
        "/v1/files",
        data={"purpose": "user_data", "file": (io.BytesIO(b"x" * 1000), "a.txt")},
        headers=headers,
    )
    assert exact.status_code == 200 and exact.json["bytes"] == 1000

    boundary = "cap"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.txt"\r\n\r\n'
        ).encode()
        + b"y" * 1001
        + f"\r\n--{boundary}--\r\n".encode()
    )
    # No length: the body ends where the server says (gunicorn de-chunks it and says so).
    kwargs: dict[str, Any] = {"data": body}
    if chunked:
        kwargs = {
            "input_stream": io.BytesIO(body),
            "environ_overrides": {"wsgi.input_terminated": True},
        }
    answer = client.post(
        "/v1/files",
        content_type=f"multipart/form-data; boundary={boundary}",
        headers=headers,
        **kwargs,
    )
    assert answer.status_code == 413, answer.text
    error = answer.json["error"]
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error",
        "file",
        "request_too_large",
    )
    assert "1000 bytes" in error["message"]
    assert_left_nothing(files_dir, rows=1)


def test_a_declared_length_far_over_the_cap_is_refused_before_reading(
    make_app, fresh_store, files_dir
):
    app = make_app(file_store_base_dir=str(files_dir), max_file_bytes=1000, **fresh_store)
    answer = app.test_client().post(
        "/v1/files",
        data={"purpose": "user_data", "file": (io.BytesIO(b"z" * 300_000), "big.txt")},
        headers={"Authorization": "Bearer sk-a"},
    )
    assert answer.status_code == 413
    assert_left_nothing(files_dir)


@contextlib.contextmanager
def small_file_limit() -> Iterator[None]:
    """Files may not grow past 256 KB in this process (as on a full disk): writes fail."""
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)


def test_a_full_disk_is_a_clear_507_that_leaves_nothing_and_the_next_upload_works(
    make_app, files_dir, tmp_path
):
    app = make_app(file_store_base_dir=str(files_dir), store_dsn=str(tmp_path / "full.db"))
    sdk = sdk_for(app)
    first = sdk.files.create(file=("small.txt", b"fits"), purpose="user_data")
    with small_file_limit(), pytest.raises(openai.APIStatusError) as caught:
        sdk.files.create(file=("big.bin", b"b" * (512 * 1024)), purpose="user_data")
    error = assert_openai_error(caught.value, 507)
    assert error["code"] == "insufficient_storage" and "full" in error["message"]
    assert_left_nothing(files_dir, rows=1)
    assert sdk.files.content(first.id).read() == b"fits"
    again = sdk.files.create(file=("big.bin", b"b" * (512 * 1024)), purpose="user_data")
    assert sdk.files.content(again.id).read() == b"b" * (512 * 1024)


def test_a_failed_commit_removes_the_bytes(make_app, files_dir, tmp_path):
    path = tmp_path / "refusing.db"
    app = make_app(file_store_base_dir=str(files_dir), store_dsn=str(path))
    with app.app_context(), db.connection_context():
        db.execute_sql(
            "CREATE TRIGGER refuse_files BEFORE INSERT ON files "
            "BEGIN SELECT RAISE(ABORT, 'refused by a test'); END"
        )
    sdk = sdk_for(app)
    with pytest.raises(openai.InternalServerError):
        sdk.files.create(file=("a.txt", b"never kept"), purpose="user_data")
    assert on_disk(files_dir) == []


def test_a_file_whose_bytes_are_gone_is_a_clear_server_error(files_sdk, files_dir):
    uploaded = files_sdk.files.create(file=("a.txt", b"bytes"), purpose="user_data")
    (files_dir / uploaded.id[-2:] / uploaded.id).unlink()
    with pytest.raises(openai.InternalServerError) as caught:
        files_sdk.files.content(uploaded.id)
    assert assert_openai_error(caught.value, 500)["code"] == "file_content_missing"
    assert files_sdk.files.retrieve(uploaded.id).id == uploaded.id


def test_files_need_a_key_in_keys_mode_before_the_body_is_read(make_app, files_dir):
    from tests.integration.tenancy import KEYS_MODE

    app = make_app(file_store_base_dir=str(files_dir), **KEYS_MODE)
    answer = app.test_client().post(
        "/v1/files",
        data={"purpose": "user_data", "file": (io.BytesIO(b"x"), "a.txt")},
        headers={"Authorization": "Bearer not-a-key"},
    )
    assert answer.status_code == 401
    assert on_disk(files_dir) == []
