"""/v1/files: upload, list, retrieve, download and delete files.

An upload is read as it arrives: werkzeug's multipart parser writes the
file part straight into the blob store's part file (`BlobStore.receive`),
so no upload is ever held in memory, and one larger than
`GATEWAY_MAX_FILE_BYTES` is refused (413) as soon as it is, with its part
removed. The body as a whole may exceed the cap only by the multipart
framing and the small fields beside the file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, jsonify, request, send_file
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser
from werkzeug.wsgi import get_input_stream

from app.api.http import page_args, request_context, services
from app.errors import InvalidRequest, PayloadTooLarge
from app.services import files as service

if TYPE_CHECKING:
    from app.store.blobs import Upload

bp = Blueprint("files", __name__, url_prefix="/v1/files")

MULTIPART = "multipart/form-data"
# `purpose` and the expiry are a few bytes each; werkzeug's decoder also holds up
# to this much of the file at once while it looks for the next boundary.
FIELD_BYTES = 1024 * 1024
FRAMING_BYTES = 64 * 1024  # boundaries and part headers around them
MAX_PARTS = 8
MAX_LIST = 10_000  # the API's own maximum (and default) for a page of files


@bp.post("")
def create() -> Any:
    blobs = services().blobs
    uploads: list[Upload] = []

    def part_file(*_args: Any, **_kwargs: Any) -> Upload:
        upload = blobs.receive()
        uploads.append(upload)
        return upload

    try:
        form, files = _multipart(part_file, blobs.max_bytes)
        return jsonify(service.create_file(request_context(), blobs, form, files))
    finally:
        for upload in uploads:
            upload.discard()  # the kept one was renamed into place: nothing to remove


@bp.get("")
def list_files() -> Any:
    page = page_args(default=MAX_LIST, maximum=MAX_LIST)
    if page["before"] is not None:
        raise InvalidRequest("Unknown parameter: 'before'.", param="before")
    return jsonify(service.list_files(request_context(), page, purpose=request.args.get("purpose")))


@bp.get("/<file_id>")
def retrieve(file_id: str) -> Any:
    return jsonify(service.get_file(request_context(), file_id))


@bp.get("/<file_id>/content")
def content(file_id: str) -> Any:
    file, path = service.file_content(request_context(), services().blobs, file_id)
    return send_file(
        path,
        mimetype="application/octet-stream",
        download_name=file["filename"],
        conditional=False,
        etag=False,
    )


@bp.delete("/<file_id>")
def delete(file_id: str) -> Any:
    return jsonify(service.delete_file(request_context(), services().blobs, file_id))


def _multipart(part_file: Any, max_bytes: int) -> tuple[dict[str, str], list[tuple[str, Any]]]:
    """The form's fields and its file parts (name, FileStorage), read from the stream."""
    mimetype, options = request.mimetype, request.mimetype_params
    if mimetype != MULTIPART:
        raise InvalidRequest(
            f"Invalid Content-Type header ({mimetype or 'none'}): an upload is "
            f"{MULTIPART} with the fields 'file' and 'purpose'.",
            code="invalid_content_type",
        )
    limit = max_bytes + FIELD_BYTES + FRAMING_BYTES
    parser = FormDataParser(
        stream_factory=part_file, max_form_memory_size=FIELD_BYTES, max_form_parts=MAX_PARTS
    )
    stream = None
    try:
        stream = _Counted(get_input_stream(request.environ, max_content_length=limit))
        _, form, files = parser.parse(stream, mimetype, request.content_length, options)
    except RequestEntityTooLarge:
        # werkzeug says "too large" for a body past the limit and for a form past its
        # parts or a field past its size: only the first is a file too large.
        if stream is not None and stream.count < limit:
            raise InvalidRequest(
                f"The form has more than {MAX_PARTS} parts, or a field of more than "
                f"{FIELD_BYTES} bytes: an upload is 'file', 'purpose' and 'expires_after'.",
                code="invalid_form",
            ) from None
        raise PayloadTooLarge(
            f"The file is larger than this gateway accepts ({max_bytes} bytes).", param="file"
        ) from None
    except ValueError as exc:  # the multipart body is malformed or cut short
        raise InvalidRequest(f"The multipart body could not be read: {exc}.") from None
    fields = {}
    for name, values in form.lists():
        if len(values) > 1:
            raise InvalidRequest(f"'{name}' was given more than once.", param=name)
        fields[name] = values[0]
    return fields, list(files.items(multi=True))


class _Counted:
    """A body stream that counts what was read of it."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.count += len(data)
        return data
