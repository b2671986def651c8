"""The Files API's objects and the rules of an upload's form fields (no I/O).

An upload is multipart: `file` (the bytes, with their filename),
`purpose`, and optionally `expires_after[anchor]` / `expires_after[seconds]`
(the openai SDKs send the object so). Files of purpose `batch` expire after
30 days unless told otherwise, as OpenAI's do; others are kept until
deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.errors import InvalidRequest

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
EXPIRY_ANCHORS = ("created_at",)
MIN_EXPIRY, MAX_EXPIRY = 3600, 30 * 24 * 3600
DEFAULT_EXPIRY = {"batch": MAX_EXPIRY}
MAX_FILENAME = 256
UPLOAD_FIELDS = ("purpose", "expires_after[anchor]", "expires_after[seconds]")


def upload_fields(form: Mapping[str, str]) -> tuple[str, int | None]:
    """The purpose and the lifetime in seconds (None: kept) an upload's form fields ask for."""
    for name in form:
        if name not in UPLOAD_FIELDS:
            raise InvalidRequest(f"Unknown parameter: '{name}'.", param=name)
    purpose = form.get("purpose")
    if not purpose:
        raise InvalidRequest("Missing required parameter: 'purpose'.", param="purpose")
    if purpose not in PURPOSES:
        raise InvalidRequest(
            f"Invalid value for 'purpose': '{purpose}'. Expected one of: {', '.join(PURPOSES)}.",
            param="purpose",
        )
    anchor = form.get("expires_after[anchor]")
    seconds = form.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return purpose, DEFAULT_EXPIRY.get(purpose)
    if anchor not in EXPIRY_ANCHORS:
        raise InvalidRequest(
            "Invalid value for 'expires_after.anchor': expected 'created_at'.",
            param="expires_after.anchor",
        )
    try:
        lifetime = int(seconds or "")
    except ValueError:
        lifetime = 0
    if not MIN_EXPIRY <= lifetime <= MAX_EXPIRY:
        raise InvalidRequest(
            f"Invalid value for 'expires_after.seconds': must be a whole number between "
            f"{MIN_EXPIRY} and {MAX_EXPIRY}.",
            param="expires_after.seconds",
        )
    return purpose, lifetime


def filename_of(given: str | None) -> str:
    """The name a file is listed by: the client's, without a path, cut to the column's size."""
    name = (given or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name:
        raise InvalidRequest("The uploaded file has no filename.", param="file")
    return name[:MAX_FILENAME]


def file_object(
    file_id: str,
    filename: str,
    purpose: str,
    size: int,
    created_at: int,
    expires_at: int | None,
) -> dict[str, Any]:
    """The `file` object as the API returns it (`status` is always `processed`: the bytes
    are stored whole before the object exists)."""
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": created_at,
        "expires_at": expires_at,
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "status_details": None,
    }


def deleted_object(file_id: str) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "deleted": True}
