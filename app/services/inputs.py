"""Preparing a request's items: normalise them, resolve references and files, load history.

Everything here runs before anything is sent upstream, so a bad reference
or an unknown id is refused with nothing sent and nothing stored.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

from app.auth.principal import Owner
from app.errors import InvalidRequest, NotFound
from app.protocol.ids import new_item_id
from app.protocol.responses.objects import output_text_part
from app.protocol.sealed import open_sealed
from app.services import extract
from app.store import conversations, files, responses
from app.store.blobs import BlobStore

log = logging.getLogger(__name__)

FILE_PART_TYPES = ("input_file", "input_image")
# What the files of one request may hold together, as OpenAI's limit for inputs.
MAX_INPUT_FILE_BYTES = 50 * 1024 * 1024


def normalize_input(raw: Any) -> list[dict[str, Any]]:
    """Return the input as typed items with ids and list content, as the API stores them."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    return [_normalize_item(dict(item)) for item in raw]


def _normalize_item(item: dict[str, Any]) -> dict[str, Any]:
    item.setdefault("type", "message")
    if item["type"] == "item_reference":
        return item
    if not item.get("id"):
        item["id"] = new_item_id(item["type"])
    if item["type"] == "message":
        item.setdefault("status", "completed")
        if isinstance(item["content"], str):
            item["content"] = [_text_part(item["role"], item["content"])]
    return item


def _text_part(role: str, text: str) -> dict[str, Any]:
    return output_text_part(text) if role == "assistant" else {"type": "input_text", "text": text}


def history_for(owner: Owner, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the stored items of `owner`'s this request continues (chain or conversation)."""
    previous = request.get("previous_response_id")
    conversation = request.get("conversation")
    if previous:
        chain = responses.chain_items(owner, previous)
        if chain is None:
            raise NotFound(
                f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        return chain
    if conversation:
        if conversations.get_conversation(owner, conversation) is None:
            raise NotFound(
                f"Conversation with id '{conversation}' not found.",
                param="conversation",
                code="conversation_not_found",
            )
        return conversations.all_items(owner, conversation)
    return []


def resolve_references(owner: Owner, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace `item_reference` items with the stored items of `owner`'s they name."""
    wanted = [item["id"] for item in items if item["type"] == "item_reference"]
    if not wanted:
        return items
    found = responses.items_by_id(owner, wanted)
    missing = [item_id for item_id in wanted if item_id not in found]
    if missing:
        raise NotFound(
            f"Item with id '{missing[0]}' not found.", param="input", code="item_not_found"
        )
    return [found[item["id"]] if item["type"] == "item_reference" else item for item in items]


def open_sealed_reasoning(items: list[dict[str, Any]], secret: bytes) -> list[dict[str, Any]]:
    """Give reasoning items that carry `encrypted_content` their text back."""
    opened = []
    for item in items:
        blob = item.get("encrypted_content") if item["type"] == "reasoning" else None
        if blob and not item.get("content"):
            text = open_sealed(blob, secret)
            if text is None:
                log.warning(
                    "reasoning item %s: encrypted_content not readable, left out", item["id"]
                )
                continue
            item = {**item, "content": [{"type": "reasoning_text", "text": text}]}
        opened.append(item)
    return opened


def attach_files(
    owner: Owner, blobs: BlobStore, items: list[dict[str, Any]], *, history: bool = False
) -> list[dict[str, Any]]:
    """Give the message parts that name an uploaded file (`input_file`, `input_image` with a
    `file_id`) the file's content, as a backend reads it: a copy (stored items keep the id).

    A file with text (UTF-8, HTML, PDF) becomes an `input_text` part headed by its name;
    an image, an `image_url` data URL; other bytes, `file_data`. A file of the new input
    that `owner` does not have is a 404; one the history names that is gone since is
    replaced by a line saying so.
    """
    named = {
        part["file_id"]
        for item in items
        for part in _file_parts(item)
        if not part.get("image_url") and not part.get("file_data")
    }
    if not named:
        return items
    found = files.files_by_id(owner, sorted(named), int(time.time()))
    missing = sorted(named - set(found))
    if missing and not history:
        raise NotFound(
            f"File with id '{missing[0]}' not found.", param="input", code="file_not_found"
        )
    total = sum(found[file_id]["bytes"] for file_id in found)
    if total > MAX_INPUT_FILE_BYTES:
        raise InvalidRequest(
            f"Files given as input may hold at most {MAX_INPUT_FILE_BYTES} bytes together; "
            f"these hold {total}.",
            param="input",
        )
    contents = {file_id: blobs.read(file_id) for file_id in found}
    attached = []
    for item in items:
        if any(_file_parts(item)):
            parts = [_attached(part, found, contents, history) for part in item["content"]]
            item = {**item, "content": parts}
        attached.append(item)
    return attached


def _file_parts(item: dict[str, Any]) -> Any:
    if item.get("type") != "message" or not isinstance(item.get("content"), list):
        return ()
    return (
        part
        for part in item["content"]
        if part.get("type") in FILE_PART_TYPES and part.get("file_id")
    )


def _attached(
    part: dict[str, Any],
    found: dict[str, dict[str, Any]],
    contents: dict[str, bytes],
    history: bool,
) -> dict[str, Any]:
    file_id = part.get("file_id")
    if part.get("type") not in FILE_PART_TYPES or not file_id:
        return part
    if part.get("image_url") or part.get("file_data"):
        return part  # the client sent the content itself
    if file_id not in found:
        return {"type": "input_text", "text": f"[File {file_id} was deleted.]"}
    data, filename = contents[file_id], found[file_id]["filename"]
    media_type = extract.image_type(data)
    if part["type"] == "input_image":
        if media_type is None:
            raise InvalidRequest(
                f"File '{file_id}' is not an image (PNG, JPEG, GIF or WebP).", param="input"
            )
        return {**part, "image_url": _data_url(media_type, data)}
    try:
        text = extract.extract_text(filename, data) if media_type is None else None
    except extract.ExtractError as exc:
        if not history:
            raise InvalidRequest(f"File '{file_id}': {exc}.", param="input") from None
        text = None
    if text is not None:
        return {"type": "input_text", "text": f"[File {filename}]\n{text}"}
    media_type = media_type or "application/octet-stream"
    return {**part, "file_data": _data_url(media_type, data), "filename": filename}


def _data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
