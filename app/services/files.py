"""Use case: the Files API, as the caller's own: uploads kept whole or not at all.

The bytes go in place before the row is committed, and a failed commit
removes them; a delete commits first, then removes the bytes (see
app/store/blobs.py for what a worker killed midway leaves, and who clears
it).
"""

from __future__ import annotations

import time
from typing import Any

from app.errors import InvalidRequest, NotFound
from app.protocol.files import deleted_object, file_object, filename_of, upload_fields
from app.protocol.ids import new_id
from app.protocol.responses.objects import list_object
from app.services.context import RequestContext
from app.store import files as store
from app.store.blobs import BlobStore, Upload

FILE_FIELD = "file"


def create_file(
    context: RequestContext, blobs: BlobStore, form: dict[str, str], parts: list[tuple[str, Any]]
) -> dict[str, Any]:
    """Keep an upload (its form fields and file parts, already written to part files)."""
    purpose, lifetime = upload_fields(form)
    upload, filename = _the_file(parts)
    now = int(time.time())
    file = file_object(
        new_id("file", "-"),
        filename,
        purpose,
        upload.size,
        now,
        now + lifetime if lifetime is not None else None,
    )
    blobs.keep(upload, file["id"])
    try:
        store.insert_file(context.owner, file)
    except BaseException:
        blobs.remove(file["id"])
        raise
    return file


def list_files(
    context: RequestContext, page: dict[str, Any], purpose: str | None
) -> dict[str, Any]:
    files, has_more = store.list_files(
        context.owner,
        int(time.time()),
        limit=page["limit"],
        order=page["order"],
        after=page["after"],
        purpose=purpose,
    )
    return list_object(files, has_more)


def get_file(context: RequestContext, file_id: str) -> dict[str, Any]:
    file = store.get_file(context.owner, file_id, int(time.time()))
    if file is None:
        raise _not_found(file_id)
    return file


def file_content(
    context: RequestContext, blobs: BlobStore, file_id: str
) -> tuple[dict[str, Any], str]:
    """The file object and the path of its bytes."""
    return get_file(context, file_id), blobs.existing(file_id)


def delete_file(context: RequestContext, blobs: BlobStore, file_id: str) -> dict[str, Any]:
    if not store.delete_file(context.owner, file_id, int(time.time())):
        raise _not_found(file_id)
    blobs.remove(file_id)
    return deleted_object(file_id)


def _the_file(parts: list[tuple[str, Any]]) -> tuple[Upload, str]:
    """The one `file` part: its part file and its name."""
    for name, _part in parts:
        if name != FILE_FIELD:
            raise InvalidRequest(f"Unknown parameter: '{name}'.", param=name)
    if not parts:
        raise InvalidRequest("Missing required parameter: 'file'.", param="file")
    if len(parts) > 1:
        raise InvalidRequest("Only one file may be uploaded at a time.", param="file")
    part = parts[0][1]
    return part.stream, filename_of(part.filename)


def _not_found(file_id: str) -> NotFound:
    return NotFound(f"No such File object: {file_id}", param="id")
