"""Schemathesis against the running gateway, from its own /openapi.json.

The gateway (with the fake backend behind it) is served over loopback by
werkzeug in a thread; schemathesis sends generated requests, valid and
invalid, to every operation of the document the gateway serves. For each
one: no 5xx, every error in the OpenAI shape, responses as documented,
invalid data refused, and a refused request neither reaches the backend nor
adds a row to any table.

Random ids only ever find nothing, so in about half the cases the ids a
request names (in its path, or `previous_response_id`/`conversation` in a
create body) are swapped for those of freshly made objects: a stored
response (sometimes a background one) and a conversation with one item.
Which cases is a function of the generated case itself, so that hypothesis
replays an example the same way (`@schema.given` would turn off
schemathesis' coverage phase).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode
from werkzeug.serving import make_server

from app import create_app
from app.api.openapi import document
from app.store.models import MODELS
from tests.fakebackend import FakeBackend

MAX_EXAMPLES = 100
MODEL = "fake-model"
REQUEST_TIMEOUT = 15.0
BACKGROUND_JOIN_SECONDS = 15.0
BACKEND_READ_TIMEOUT = 5.0
ERROR_FIELDS = {"message", "type", "param", "code"}


def openai_error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx body is `{"error": {message, type, param, code}}`."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_FIELDS, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    openai_error_shape,
]
# Built by the function that serves /openapi.json (a test below checks they
# agree): schemathesis' fixture-based lazy loader fails under pytest 9.2 (it
# sets the private `Function._nodeid`).
schema = schemathesis.openapi.from_dict(document())


@dataclass
class Gateway:
    """The served gateway: its address, its database file and its backend."""

    url: str
    database: str
    backend: FakeBackend

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = requests.post(f"{self.url}{path}", json=body, timeout=REQUEST_TIMEOUT)
        assert response.status_code == 200, response.text
        return response.json()

    def live_ids(self, background: bool) -> dict[str, str]:
        """Fresh objects to point a request at, by parameter name."""
        message = {"type": "message", "role": "user", "content": "hello"}
        response = self.post(
            "/v1/responses", {"model": MODEL, "input": "hello", "background": background}
        )
        conversation = self.post("/v1/conversations", {"items": [message]})
        items = requests.get(
            f"{self.url}/v1/conversations/{conversation['id']}/items", timeout=REQUEST_TIMEOUT
        ).json()
        upload = requests.post(
            f"{self.url}/v1/files",
            data={"purpose": "user_data"},
            files={"file": ("notes.txt", b"some notes")},
            timeout=REQUEST_TIMEOUT,
        )
        assert upload.status_code == 200, upload.text
        file_id = upload.json()["id"]
        store = self.post("/v1/vector_stores", {"name": "notes", "file_ids": [file_id]})
        batch = self.post(f"/v1/vector_stores/{store['id']}/file_batches", {"file_ids": [file_id]})
        self.wait_for_ingestion(store["id"], file_id)
        prompt = self.post("/v1/prompts", {"name": "p", "template": "Be {{tone}}."})
        return {
            "response_id": response["id"],
            "conversation_id": conversation["id"],
            "item_id": items["data"][0]["id"],
            "file_id": file_id,
            "vector_store_id": store["id"],
            "batch_id": batch["id"],
            "prompt_id": prompt["id"],
        }

    def wait_for_ingestion(self, store_id: str, file_id: str) -> None:
        """Until the file is ingested (rows the ingester adds must not land mid-case)."""
        deadline = time.monotonic() + REQUEST_TIMEOUT
        url = f"{self.url}/v1/vector_stores/{store_id}/files/{file_id}"
        while requests.get(url, timeout=REQUEST_TIMEOUT).json()["status"] == "in_progress":
            assert time.monotonic() < deadline, "the file was never ingested"
            time.sleep(0.05)

    def row_counts(self) -> dict[str, int]:
        with sqlite3.connect(self.database, timeout=5) as connection:
            return {
                name: connection.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
                for name in (model._meta.table_name for model in MODELS)
            }


@pytest.fixture(scope="module")
def gateway(backend_server: FakeBackend, tmp_path_factory: Any) -> Iterator[Gateway]:
    backend_server.reset()
    directory = tmp_path_factory.mktemp("schemathesis")
    database = str(directory / "gateway.db")
    app = create_app(
        {
            "store_dsn": database,
            "file_store_base_dir": str(directory / "files"),
            "backends": [
                {"base_url": backend_server.base_url, "read_timeout": BACKEND_READ_TIMEOUT}
            ],
        }
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="gateway-server", daemon=True)
    thread.start()
    try:
        yield Gateway(f"http://127.0.0.1:{server.server_port}", database, backend_server)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        _join_background_runs()


@pytest.mark.slow
def test_served_document_is_the_one_fuzzed(gateway: Gateway) -> None:
    response = requests.get(f"{gateway.url}/openapi.json", timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200
    assert response.json() == document()


@pytest.mark.slow
def test_row_counts_see_what_the_gateway_stores(gateway: Gateway) -> None:
    before = gateway.row_counts()
    gateway.live_ids(background=False)
    after = gateway.row_counts()
    for table in ("responses", "items", "conversations", "files"):
        assert after[table] > before[table], table


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,  # write no .hypothesis/ into the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_gateway_keeps_its_contract(case: Any, gateway: Gateway) -> None:
    choice = zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode())
    if choice % 2:
        _point_at(case, gateway.live_ids(background=choice % 4 == 1))
    _join_background_runs()
    rows_before = gateway.row_counts()
    sent_before = len(gateway.backend.chat_requests())
    response = case.call(base_url=gateway.url, timeout=REQUEST_TIMEOUT)
    case.validate_response(response, checks=_checks_for(case))
    if response.status_code >= 400:
        assert gateway.row_counts() == rows_before, "a refused request stored something"
        assert len(gateway.backend.chat_requests()) == sent_before, "a refused request was sent"


def _checks_for(case: Any) -> list[Any]:
    """The checks of a case; a form whose "invalid" value is an empty list sends no field
    at all (multipart has no empty list), so there is nothing the server could refuse."""
    body = case.body if isinstance(case.body, dict) else {}
    if case.media_type == "multipart/form-data" and any(value == [] for value in body.values()):
        return [check for check in CHECKS if check is not negative_data_rejection]
    return CHECKS


def _join_background_runs() -> None:
    """Wait (bounded) for background responses to finish writing."""
    for thread in threading.enumerate():
        if thread.name.startswith("background-"):
            thread.join(timeout=BACKGROUND_JOIN_SECONDS)
            assert not thread.is_alive(), f"{thread.name} still running"


def _point_at(case: Any, ids: dict[str, str]) -> None:
    """Swap the ids of a case's valid parts for those of live objects."""
    if _is_positive(case, ParameterLocation.PATH):
        case.path_parameters = {name: ids[name] for name in case.path_parameters or {}}
    body = case.body
    if case.operation.path == "/v1/responses" and _is_positive(case, ParameterLocation.BODY):
        if isinstance(body.get("previous_response_id"), str):
            body["previous_response_id"] = ids["response_id"]
        if body.get("conversation") is not None:
            body["conversation"] = ids["conversation_id"]


def _is_positive(case: Any, location: ParameterLocation) -> bool:
    component = case.meta.components.get(location) if case.meta else None
    return component is not None and component.mode == GenerationMode.POSITIVE
