"""Uploaded files as a response's input (`input_file` / `input_image` with a `file_id`).

The backend reads what the file holds: its text (plain, HTML, PDF) headed by
its name, an image as a data URL, other bytes as a Chat file part. The
stored input keeps the `file_id` as the client sent it. Another owner's
file, or one that is not there, is a 404 with nothing sent and nothing
stored; a chain that names a file deleted since goes on without it.
"""

from __future__ import annotations

import base64

import pytest

from app.services import inputs
from tests import fakebackend as fb
from tests.conftest import sdk_for
from tests.documents import pdf, png
from tests.integration.helpers import MODEL, assert_refused, create, last_chat


def user_message(backend) -> object:
    (message,) = [m for m in last_chat(backend)["messages"] if m["role"] == "user"][-1:]
    return message["content"]


def with_file(part: dict) -> list[dict]:
    return [{"role": "user", "content": [{"type": "input_text", "text": "Read this."}, part]}]


@pytest.mark.parametrize(
    "filename, data, text",
    [
        ("notes.md", "# Notes\nCafé at 9, naïve plan.".encode(), "# Notes\nCafé at 9, naïve plan."),
        (
            "page.html",
            b"<html><head><script>x()</script></head><body><p>Hello &amp; bye</p></body></html>",
            "Hello & bye",
        ),
        ("report.pdf", pdf("Quarterly revenue rose.", "Costs fell."), "Quarterly revenue rose."),
        ("rows.csv", b"a,b\n1,2\n", "a,b\n1,2\n"),
    ],
)
def test_a_file_with_text_reaches_the_backend_as_its_text(sdk, backend, filename, data, text):
    file = sdk.files.create(file=(filename, data), purpose="user_data")
    part = {"type": "input_file", "file_id": file.id}
    result = create(sdk, input=with_file(part))
    content = user_message(backend)
    assert isinstance(content, str)  # text parts only: a plain string, as every backend takes
    assert content.startswith(f"Read this.\n[File {filename}]\n")
    assert text in content
    assert "<script>" not in content and "x()" not in content
    stored = sdk.responses.input_items.list(result.response.id).data[0]
    assert stored.content[1].model_dump(exclude_none=True) == part  # as the client sent it


def test_an_image_file_reaches_the_backend_as_a_data_url(sdk, backend):
    image = png()
    file = sdk.files.create(file=("dot.png", image), purpose="vision")
    create(sdk, input=with_file({"type": "input_image", "file_id": file.id, "detail": "low"}))
    content = user_message(backend)
    assert content[1] == {
        "type": "image_url",
        "image_url": {
            "url": "data:image/png;base64," + base64.b64encode(image).decode(),
            "detail": "low",
        },
    }


def test_other_bytes_reach_the_backend_as_a_chat_file_part(sdk, backend):
    data = bytes(range(256))
    file = sdk.files.create(file=("blob.bin", data), purpose="user_data")
    create(sdk, input=with_file({"type": "input_file", "file_id": file.id}))
    assert user_message(backend)[1] == {
        "type": "file",
        "file": {
            "file_data": "data:application/octet-stream;base64," + base64.b64encode(data).decode(),
            "filename": "blob.bin",
        },
    }


def test_a_chain_naming_a_file_deleted_since_goes_on_without_it(sdk, backend):
    file = sdk.files.create(file=("notes.txt", b"The code is 4521."), purpose="user_data")
    first = create(sdk, input=with_file({"type": "input_file", "file_id": file.id}))
    assert "The code is 4521." in user_message(backend)
    sdk.files.delete(file.id)
    backend.enqueue(fb.text("I no longer have it."))
    create(sdk, input="What was the code?", previous_response_id=first.response.id)
    history = last_chat(backend)["messages"][0]["content"]
    assert "4521" not in history and f"[File {file.id} was deleted.]" in history


@pytest.mark.parametrize("part_type", ["input_file", "input_image"])
def test_another_owners_file_is_a_404_with_nothing_sent_or_stored(app, backend, part_type):
    owner = sdk_for(app, api_key="sk-owner-a")
    other = sdk_for(app, api_key="sk-owner-b")
    file = owner.files.create(file=("dot.png", png()), purpose="vision")
    error = assert_refused(
        app,
        backend,
        lambda: create(other, input=with_file({"type": part_type, "file_id": file.id})),
        404,
    )
    assert (error["param"], error["code"]) == ("input", "file_not_found")
    assert file.id in error["message"]


def test_an_unknown_file_is_a_404_with_nothing_sent_or_stored(app, sdk, backend):
    error = assert_refused(
        app,
        backend,
        lambda: create(sdk, input=with_file({"type": "input_file", "file_id": "file-nope"})),
        404,
    )
    assert error["code"] == "file_not_found"


def test_a_file_that_is_not_an_image_is_refused_as_an_image(app, sdk, backend):
    file = sdk.files.create(file=("notes.txt", b"words"), purpose="user_data")
    error = assert_refused(
        app,
        backend,
        lambda: create(sdk, input=with_file({"type": "input_image", "file_id": file.id})),
        400,
    )
    assert error["param"] == "input" and "not an image" in error["message"]


def test_a_pdf_that_cannot_be_read_is_refused(app, sdk, backend):
    file = sdk.files.create(file=("broken.pdf", b"%PDF-1.4\nnot really"), purpose="user_data")
    error = assert_refused(
        app,
        backend,
        lambda: create(sdk, input=with_file({"type": "input_file", "file_id": file.id})),
        400,
    )
    assert "PDF could not be read" in error["message"]


def test_files_over_the_input_limit_together_are_refused(app, sdk, backend, monkeypatch):
    monkeypatch.setattr(inputs, "MAX_INPUT_FILE_BYTES", 10)
    first = sdk.files.create(file=("a.txt", b"123456"), purpose="user_data")
    second = sdk.files.create(file=("b.txt", b"789012"), purpose="user_data")
    parts = [{"type": "input_file", "file_id": f.id} for f in (first, second)]
    error = assert_refused(
        app,
        backend,
        lambda: create(sdk, input=[{"role": "user", "content": parts}]),
        400,
    )
    assert "at most 10 bytes" in error["message"]


def test_file_data_sent_by_the_client_is_passed_on_as_it_was(sdk, backend):
    data_url = "data:application/pdf;base64," + base64.b64encode(pdf("Inline.")).decode()
    part = {"type": "input_file", "filename": "inline.pdf", "file_data": data_url}
    create(sdk, input=with_file(part))
    assert user_message(backend)[1] == {
        "type": "file",
        "file": {"file_data": data_url, "filename": "inline.pdf"},
    }


def test_a_stream_with_a_file_works_through_the_sdk(sdk, backend):
    file = sdk.files.create(file=("notes.txt", b"Streamed notes."), purpose="user_data")
    with sdk.responses.stream(
        model=MODEL, input=with_file({"type": "input_file", "file_id": file.id})
    ) as stream:
        final = stream.get_final_response()
    assert final.status == "completed"
    assert "Streamed notes." in user_message(backend)
