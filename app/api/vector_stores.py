"""/v1/vector_stores: stores, their files and file batches, and search."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from app.api.http import json_body, page_args, request_context, services
from app.errors import InvalidRequest
from app.protocol.vector_stores import FILE_STATUSES, validate_vector_store_request
from app.services import vector_stores as service

bp = Blueprint("vector_stores", __name__, url_prefix="/v1/vector_stores")

STORE = "/<vector_store_id>"
FILE = "/<vector_store_id>/files/<file_id>"
BATCH = "/<vector_store_id>/file_batches/<batch_id>"


def _body(kind: str, empty: Any = None) -> dict[str, Any]:
    return validate_vector_store_request(kind, json_body(empty=empty))


def _status_filter() -> str | None:
    status = request.args.get("filter")
    if status is not None and status not in FILE_STATUSES:
        raise InvalidRequest(
            f"Invalid 'filter': expected one of {', '.join(FILE_STATUSES)}.", param="filter"
        )
    return status


@bp.post("")
def create() -> Any:
    return jsonify(service.create_store(services(), request_context(), _body("create", {})))


@bp.get("")
def list_stores() -> Any:
    return jsonify(service.list_stores(request_context(), page_args()))


@bp.get(STORE)
def retrieve(vector_store_id: str) -> Any:
    return jsonify(service.get_store(request_context(), vector_store_id))


@bp.post(STORE)
def update(vector_store_id: str) -> Any:
    body = _body("update", {})
    return jsonify(service.update_store(request_context(), vector_store_id, body))


@bp.delete(STORE)
def delete(vector_store_id: str) -> Any:
    return jsonify(service.delete_store(request_context(), vector_store_id))


@bp.post(f"{STORE}/search")
def search(vector_store_id: str) -> Any:
    body = _body("search")
    return jsonify(service.search_store(services(), request_context(), vector_store_id, body))


@bp.post(f"{STORE}/files")
def add_file(vector_store_id: str) -> Any:
    body = _body("add_file")
    return jsonify(service.add_file(services(), request_context(), vector_store_id, body))


@bp.get(f"{STORE}/files")
def list_files(vector_store_id: str) -> Any:
    page, status = page_args(), _status_filter()
    return jsonify(service.list_files(request_context(), vector_store_id, page, status))


@bp.get(FILE)
def retrieve_file(vector_store_id: str, file_id: str) -> Any:
    return jsonify(service.get_file(request_context(), vector_store_id, file_id))


@bp.post(FILE)
def update_file(vector_store_id: str, file_id: str) -> Any:
    body = _body("update_file")
    return jsonify(service.update_file(request_context(), vector_store_id, file_id, body))


@bp.delete(FILE)
def remove_file(vector_store_id: str, file_id: str) -> Any:
    return jsonify(service.remove_file(request_context(), vector_store_id, file_id))


@bp.get(f"{FILE}/content")
def file_content(vector_store_id: str, file_id: str) -> Any:
    context = request_context()
    return jsonify(service.file_content(services(), context, vector_store_id, file_id))


@bp.post(f"{STORE}/file_batches")
def create_batch(vector_store_id: str) -> Any:
    body = _body("create_batch")
    return jsonify(service.create_batch(services(), request_context(), vector_store_id, body))


@bp.get(BATCH)
def retrieve_batch(vector_store_id: str, batch_id: str) -> Any:
    return jsonify(service.get_batch(request_context(), vector_store_id, batch_id))


@bp.post(f"{BATCH}/cancel")
def cancel_batch(vector_store_id: str, batch_id: str) -> Any:
    return jsonify(service.cancel_batch(request_context(), vector_store_id, batch_id))


@bp.get(f"{BATCH}/files")
def list_batch_files(vector_store_id: str, batch_id: str) -> Any:
    page, status = page_args(), _status_filter()
    context = request_context()
    return jsonify(service.list_files(context, vector_store_id, page, status, batch_id))
