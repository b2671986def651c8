"""/v1/vector_stores through the openai SDK: stores, their files, batches, ingestion, search.

Files are ingested in the background by the worker's ingester (a thread
here); the tests wait for it as a client would, by polling the store file.
Every object is checked against the SDK's types. Search runs on keywords
alone and, with an embeddings model (the fake backend's bag of words), on
meaning too. The store runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from openai.types import VectorStore, VectorStoreDeleted, VectorStoreSearchResponse
from openai.types.vector_stores import VectorStoreFile, VectorStoreFileBatch, VectorStoreFileDeleted

from app import create_app, start_jobs
from app.services.chunking import count_tokens
from app.services.ingest import Ingester
from app.store import db
from app.store.models import VectorChunk
from app.store.models import VectorStoreFile as StoreFileRow
from tests.conftest import sdk_for
from tests.documents import pdf
from tests.integration.helpers import assert_openai_error

WAIT_SECONDS = 15.0
CATS = "Cats sleep for most of the day and purr when they are content."
DOGS = "Dogs bark at the mailman and fetch sticks in the park."
BIRDS = "Parrots can learn words; crows remember faces for years."


@pytest.fixture
def vs_app(make_app, fresh_store):
    return make_app(**fresh_store)


@pytest.fixture
def vs(vs_app) -> openai.OpenAI:
    return sdk_for(vs_app)


def upload(sdk: openai.OpenAI, name: str, data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return sdk.files.create(file=(name, raw), purpose="assistants").id


def settled(sdk: openai.OpenAI, store_id: str, file_id: str) -> VectorStoreFile:
    """The store file once its ingestion has ended (bounded wait, as a client polls)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = sdk.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
        if found.status != "in_progress" or time.monotonic() > deadline:
            return valid(VectorStoreFile, found)
        time.sleep(0.05)


def valid(model: Any, body: Any) -> Any:
    return model.model_validate(body.model_dump(), strict=True)


def store_with(sdk: openai.OpenAI, **files: str) -> tuple[str, dict[str, str]]:
    ids = {name: upload(sdk, f"{name}.txt", text) for name, text in files.items()}
    store = sdk.vector_stores.create(name="animals", file_ids=list(ids.values()))
    for file_id in ids.values():
        assert settled(sdk, store.id, file_id).status == "completed"
    return store.id, ids


def test_a_store_made_with_files_ingests_them_and_says_so(vs):
    first = upload(vs, "cats.txt", CATS)
    created = valid(
        VectorStore,
        vs.vector_stores.create(
            name="animals", file_ids=[first], metadata={"team": "zoo"}, description="pets"
        ),
    )
    assert created.id.startswith("vs_") and created.name == "animals"
    assert created.metadata == {"team": "zoo"} and created.file_counts.total == 1
    assert created.last_active_at == created.created_at and created.expires_at is None

    done = settled(vs, created.id, first)
    assert done.status == "completed" and done.last_error is None
    assert done.usage_bytes >= len(CATS)
    assert done.chunking_strategy.model_dump() == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
    }
    store = valid(VectorStore, vs.vector_stores.retrieve(created.id))
    assert store.status == "completed"
    assert store.file_counts.model_dump() == {
        "in_progress": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
        "total": 1,
    }
    assert store.usage_bytes == done.usage_bytes
    assert [s.id for s in vs.vector_stores.list()] == [created.id]


def test_search_by_keywords_ranks_the_chunk_that_holds_the_words(vs):
    store_id, ids = store_with(vs, cats=CATS, dogs=DOGS, birds=BIRDS)
    page = vs.vector_stores.search(store_id, query="why do cats purr")
    results = [valid(VectorStoreSearchResponse, result) for result in page.data]
    assert results[0].file_id == ids["cats"] and results[0].filename == "cats.txt"
    assert results[0].content[0].text == CATS and 0 < results[0].score <= 1
    assert ids["dogs"] not in [r.file_id for r in results]  # no word of the query in it
    raw = vs.vector_stores.with_raw_response.search(store_id, query=["cats", "parrots"])
    body = raw.http_response.json()
    assert body["object"] == "vector_store.search_results.page"
    assert body["search_query"] == ["cats", "parrots"] and body["has_more"] is False
    assert {r["file_id"] for r in body["data"]} == {ids["cats"], ids["birds"]}


def test_search_honours_max_results_the_threshold_and_filters(vs):
    a = upload(vs, "a.txt", "red apples and green apples")
    b = upload(vs, "b.txt", "red cars")
    c = upload(vs, "c.txt", "red roses, red wine")
    store = vs.vector_stores.create(name="red")
    attributes = {a: {"kind": "fruit", "year": 2023}, b: {"kind": "car", "year": 2021}}
    attributes[c] = {"kind": "flower", "year": 2024, "fresh": True}
    for file_id, attrs in attributes.items():
        vs.vector_stores.files.create(vector_store_id=store.id, file_id=file_id, attributes=attrs)
        assert settled(vs, store.id, file_id).attributes == attrs

    def found(**params: Any) -> list[str]:
        return [r.file_id for r in vs.vector_stores.search(store.id, query="red", **params).data]

    assert len(found()) == 3 and len(found(max_num_results=1)) == 1
    assert found(filters={"type": "eq", "key": "kind", "value": "car"}) == [b]
    assert set(found(filters={"type": "gte", "key": "year", "value": 2023})) == {a, c}
    assert set(found(filters={"type": "in", "key": "kind", "value": ["car", "fruit"]})) == {a, b}
    assert found(filters={"type": "eq", "key": "fresh", "value": True}) == [c]
    compound = {
        "type": "or",
        "filters": [
            {"type": "lt", "key": "year", "value": 2022},
            {
                "type": "and",
                "filters": [
                    {"type": "ne", "key": "kind", "value": "fruit"},
                    {"type": "eq", "key": "fresh", "value": True},
                ],
            },
        ],
    }
    assert set(found(filters=compound)) == {b, c}
    assert found(ranking_options={"score_threshold": 1.0}) == []
    updated = vs.vector_stores.files.update(
        file_id=b, vector_store_id=store.id, attributes={"kind": "fruit"}
    )
    assert updated.attributes == {"kind": "fruit"}
    assert set(found(filters={"type": "eq", "key": "kind", "value": "fruit"})) == {a, b}


def test_search_by_meaning_with_an_embeddings_model(make_app, fresh_store, backend):
    app = make_app(embedding_model="fake-embed", **fresh_store)
    sdk = sdk_for(app)
    store_id, ids = store_with(sdk, cats=CATS, dogs=DOGS)
    embedded = backend.embedding_requests()
    assert embedded and all(r["model"] == "fake-embed" for r in embedded)
    with app.app_context(), db.connection_context():
        assert all(row.embedding for row in VectorChunk.select())
    results = sdk.vector_stores.search(store_id, query="the mailman").data
    assert results[0].file_id == ids["dogs"]
    assert backend.embedding_requests()[-1]["input"] == ["the mailman"]


def test_a_failing_embeddings_model_fails_the_file_with_its_error(make_app, fresh_store, backend):
    sdk = sdk_for(make_app(embedding_model="fake-embed", **fresh_store))
    backend.fail_embeddings(1)
    file_id = upload(sdk, "cats.txt", CATS)
    store = sdk.vector_stores.create(name="x", file_ids=[file_id])
    failed = settled(sdk, store.id, file_id)
    assert failed.status == "failed" and failed.last_error.code == "server_error"
    assert "Embedding the file failed" in failed.last_error.message
    assert sdk.vector_stores.retrieve(store.id).file_counts.failed == 1
    again = sdk.vector_stores.files.create(vector_store_id=store.id, file_id=file_id)
    assert again.status == "in_progress" and again.last_error is None
    assert settled(sdk, store.id, file_id).status == "completed"


@pytest.mark.parametrize(
    "name, data, code",
    [
        ("blob.bin", bytes(range(256)) * 4, "unsupported_file"),
        ("broken.pdf", b"%PDF-1.7 not a pdf at all", "invalid_file"),
    ],
)
def test_a_file_without_text_fails_with_the_reason(vs, name, data, code):
    file_id = upload(vs, name, data)
    store = vs.vector_stores.create(name="x", file_ids=[file_id])
    failed = settled(vs, store.id, file_id)
    assert failed.status == "failed" and failed.last_error.code == code


def test_pdf_and_html_are_read_as_their_text(vs):
    paper = upload(vs, "paper.pdf", pdf("Photosynthesis turns light into sugar.", "Page two."))
    page = upload(vs, "page.html", "<html><body><p>Tides follow the moon.</p></body></html>")
    store = vs.vector_stores.create(name="docs", file_ids=[paper, page])
    for file_id in (paper, page):
        assert settled(vs, store.id, file_id).status == "completed"
    assert vs.vector_stores.search(store.id, query="photosynthesis").data[0].file_id == paper
    content = vs.vector_stores.files.content(file_id=page, vector_store_id=store.id)
    assert [(part.type, part.text) for part in content.data] == [("text", "Tides follow the moon.")]


def test_static_chunking_cuts_overlapping_chunks_of_that_many_tokens(vs_app, vs):
    words = " ".join(f"word{n}" for n in range(600))
    file_id = upload(vs, "long.txt", words)
    store = vs.vector_stores.create(name="long")
    strategy = {
        "type": "static",
        "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50},
    }
    vs.vector_stores.files.create(
        vector_store_id=store.id, file_id=file_id, chunking_strategy=strategy
    )
    done = settled(vs, store.id, file_id)
    assert done.chunking_strategy.model_dump() == strategy
    with vs_app.app_context(), db.connection_context():
        texts = [row.text for row in VectorChunk.select().order_by(VectorChunk.seq)]
    assert len(texts) > 10
    assert all(count_tokens(text) <= 100 for text in texts)
    assert texts[0].split()[-1] in texts[1]  # the overlap
    assert texts[-1].endswith("word599")


def test_file_batches_ingest_list_and_cancel(vs_app, vs):
    ids = [upload(vs, f"f{n}.txt", f"note number {n}") for n in range(3)]
    store = vs.vector_stores.create(name="batch")
    batch = valid(
        VectorStoreFileBatch,
        vs.vector_stores.file_batches.create(
            vector_store_id=store.id, file_ids=ids, attributes={"source": "batch"}
        ),
    )
    assert batch.id.startswith("vsfb_") and batch.file_counts.total == 3
    for file_id in ids:
        assert settled(vs, store.id, file_id).attributes == {"source": "batch"}
    done = valid(
        VectorStoreFileBatch,
        vs.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id),
    )
    assert done.status == "completed" and done.file_counts.completed == 3
    listed = vs.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert sorted(f.id for f in listed) == sorted(ids)
    assert vs.vector_stores.files.list(store.id, filter="failed").data == []

    # A batch cancelled before its files are taken: they end cancelled, not ingested.
    ingester = vs_app.extensions["services"].ingester
    with pause(ingester):
        more = [upload(vs, "late.txt", "late note")]
        late = vs.vector_stores.file_batches.create(
            vector_store_id=store.id, files=[{"file_id": more[0], "attributes": {"n": 1}}]
        )
        cancelled = vs.vector_stores.file_batches.cancel(late.id, vector_store_id=store.id)
    assert cancelled.status == "cancelled" and cancelled.file_counts.cancelled == 1
    assert settled(vs, store.id, more[0]).status == "cancelled"


class pause:
    """Hold this app's ingester back (its claims fail) while the block runs."""

    def __init__(self, ingester: Any) -> None:
        self.ingester = ingester

    def __enter__(self) -> None:
        self.ingest_one = self.ingester.ingest_one
        self.ingester.ingest_one = lambda: False

    def __exit__(self, *exc: Any) -> None:
        self.ingester.ingest_one = self.ingest_one


def test_files_are_listed_removed_and_deleted_with_their_chunks(vs_app, vs):
    store_id, ids = store_with(vs, cats=CATS, dogs=DOGS)
    listed = vs.vector_stores.files.list(store_id)
    assert sorted(f.id for f in listed) == sorted(ids.values())
    assert [f.id for f in vs.vector_stores.files.list(store_id, filter="completed", limit=1)]
    removed = vs.vector_stores.files.delete(file_id=ids["cats"], vector_store_id=store_id)
    valid(VectorStoreFileDeleted, removed)
    assert vs.files.retrieve(ids["cats"]).id == ids["cats"]  # the upload itself stays
    assert [r.file_id for r in vs.vector_stores.search(store_id, query="cats dogs").data] == [
        ids["dogs"]
    ]
    vs.files.delete(ids["dogs"])  # deleting the upload takes it out of every store
    assert vs.vector_stores.files.list(store_id).data == []
    assert vs.vector_stores.search(store_id, query="dogs").data == []
    with vs_app.app_context(), db.connection_context():
        assert VectorChunk.select().count() == 0 and StoreFileRow.select().count() == 0
    deleted = vs.vector_stores.delete(store_id)
    valid(VectorStoreDeleted, deleted)
    with pytest.raises(openai.NotFoundError):
        vs.vector_stores.retrieve(store_id)


def test_update_renames_and_sets_an_expiry_and_an_expired_store_refuses_work(vs_app, vs):
    store_id, ids = store_with(vs, cats=CATS)
    updated = valid(
        VectorStore,
        vs.vector_stores.update(
            store_id,
            name="renamed",
            metadata={"k": "v"},
            expires_after={"anchor": "last_active_at", "days": 2},
        ),
    )
    assert (updated.name, updated.metadata) == ("renamed", {"k": "v"})
    assert updated.expires_at == updated.last_active_at + 2 * 86400
    searched = vs.vector_stores.search(store_id, query="cats")
    assert searched.data
    with vs_app.app_context(), db.connection_context():
        db.execute_sql("UPDATE vector_stores SET expires_at = 1")
    assert vs.vector_stores.retrieve(store_id).status == "expired"
    for call in (
        lambda: vs.vector_stores.search(store_id, query="cats"),
        lambda: vs.vector_stores.files.create(vector_store_id=store_id, file_id=ids["cats"]),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            call()
        assert assert_openai_error(caught.value, 400)["code"] == "vector_store_expired"
    cleared = vs.vector_stores.update(store_id, expires_after=None)
    assert cleared.expires_after is None and cleared.expires_at is None


def test_lists_page_by_cursor(vs):
    made = [vs.vector_stores.create(name=f"s{n}").id for n in range(3)]
    assert [s.id for s in vs.vector_stores.list(limit=1)] == made[::-1]
    first = vs.vector_stores.list(order="asc", limit=2)
    assert [s.id for s in first.data] == made[:2] and first.has_more
    assert [s.id for s in vs.vector_stores.list(order="asc", after=made[0])] == made[1:]
    assert [s.id for s in vs.vector_stores.list(order="asc", before=made[2])] == made[:2]


def test_a_file_left_half_ingested_by_a_dead_worker_is_taken_up_again(vs_app, vs):
    ingester = vs_app.extensions["services"].ingester
    with pause(ingester):
        file_id = upload(vs, "cats.txt", CATS)
        store = vs.vector_stores.create(name="x", file_ids=[file_id])
        # A worker took it: while its claim holds, no one else does.
        with vs_app.app_context(), db.connection_context():
            StoreFileRow.update(claimed_until=time.time() + 60).execute()
        assert Ingester.ingest_one(ingester) is False  # the real one, not the paused
        # It died: its claim lapsed.
        with vs_app.app_context(), db.connection_context():
            StoreFileRow.update(claimed_until=time.time() - 5).execute()
        assert vs.vector_stores.files.retrieve(file_id, vector_store_id=store.id).status == (
            "in_progress"
        )
        # The next worker to start (an app on the same store and files) takes it up;
        # this one's ingester stops, its database no longer the one bound.
        restarted = create_app(settings=vs_app.extensions["settings"])
    start_jobs(restarted)
    try:
        assert settled(sdk_for(restarted), store.id, file_id).status == "completed"
    finally:
        stop_sweeping = restarted.extensions["sweeper"]
        if stop_sweeping is not None:
            stop_sweeping.set()


@pytest.mark.parametrize(
    "path, body, param",
    [
        ("", {"file_ids": ["file-nope"]}, "file_ids"),
        ("", {"chunking_strategy": {"type": "static"}}, "chunking_strategy.static"),
        (
            "",
            {
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0},
                }
            },
            "chunking_strategy.static.max_chunk_size_tokens",
        ),
        (
            "",
            {
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150},
                }
            },
            "chunking_strategy.static.chunk_overlap_tokens",
        ),
        ("", {"expires_after": {"anchor": "created_at", "days": 1}}, "expires_after.anchor"),
        ("", {"metadata": {"k": 1}}, "metadata.k"),
        ("", {"colour": "blue"}, "colour"),
    ],
)
def test_a_bad_store_request_is_refused_and_nothing_is_stored(vs_app, path, body, param):
    answer = vs_app.test_client().post(
        f"/v1/vector_stores{path}", json=body, headers={"Authorization": "Bearer sk-a"}
    )
    assert answer.status_code in (400, 404), answer.text
    assert answer.json["error"]["param"] == param
    with vs_app.app_context(), db.connection_context():
        assert db.execute_sql("SELECT count(*) FROM vector_stores").fetchone()[0] == 0


@pytest.mark.parametrize(
    "body, param",
    [
        ({}, "query"),
        ({"query": ""}, "query"),
        ({"query": []}, "query"),
        ({"query": "x", "max_num_results": 0}, "max_num_results"),
        ({"query": "x", "max_num_results": 51}, "max_num_results"),
        ({"query": "x", "filters": {"type": "eq", "key": "k"}}, "filters"),
        ({"query": "x", "filters": {"type": "like", "key": "k", "value": 1}}, "filters"),
        ({"query": "x", "filters": {"type": "in", "key": "k", "value": "a"}}, "filters"),
        ({"query": "x", "filters": {"type": "and", "filters": []}}, "filters"),
        (
            {"query": "x", "ranking_options": {"score_threshold": 2}},
            "ranking_options.score_threshold",
        ),
        ({"query": "x", "ranking_options": {"ranker": "best"}}, "ranking_options.ranker"),
    ],
)
def test_a_bad_search_is_refused(vs, body, param):
    store = vs.vector_stores.create(name="x")
    with pytest.raises(openai.BadRequestError) as caught:
        vs.post(f"/vector_stores/{store.id}/search", body=body, cast_to=object)
    assert assert_openai_error(caught.value, 400)["param"] == param


def test_bad_file_and_batch_requests_are_refused(vs):
    store = vs.vector_stores.create(name="x")
    mine = upload(vs, "a.txt", "text")
    refusals = {
        "unknown file": (
            lambda: vs.vector_stores.files.create(vector_store_id=store.id, file_id="file-x"),
            404,
        ),
        "bad attributes": (
            lambda: vs.vector_stores.files.create(
                vector_store_id=store.id, file_id=mine, attributes={"k": ["list"]}
            ),
            400,
        ),
        "unknown store": (
            lambda: vs.vector_stores.files.create(vector_store_id="vs_x", file_id=mine),
            404,
        ),
        "batch without files": (
            lambda: vs.post(f"/vector_stores/{store.id}/file_batches", body={}, cast_to=object),
            400,
        ),
        "batch with both lists": (
            lambda: vs.post(
                f"/vector_stores/{store.id}/file_batches",
                body={"file_ids": [mine], "files": [{"file_id": mine}]},
                cast_to=object,
            ),
            400,
        ),
        "unknown batch": (
            lambda: vs.vector_stores.file_batches.retrieve("vsfb_x", vector_store_id=store.id),
            404,
        ),
        "bad status filter": (lambda: vs.vector_stores.files.list(store.id, filter="done"), 400),
        "file not in the store": (
            lambda: vs.vector_stores.files.retrieve(mine, vector_store_id=store.id),
            404,
        ),
    }
    for name, (call, status) in refusals.items():
        with pytest.raises(openai.APIStatusError) as caught:
            call()
        assert_openai_error(caught.value, status), name
    assert vs.vector_stores.files.list(store.id).data == []


def test_another_owner_finds_nothing(vs_app):
    a, b = sdk_for(vs_app, api_key="sk-owner-a"), sdk_for(vs_app, api_key="sk-owner-b")
    file_id = upload(a, "cats.txt", CATS)
    store = a.vector_stores.create(name="mine", file_ids=[file_id])
    batch = a.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=[file_id])
    other_file = upload(b, "b.txt", "b's own")
    refusals = [
        lambda: b.vector_stores.retrieve(store.id),
        lambda: b.vector_stores.update(store.id, name="taken"),
        lambda: b.vector_stores.delete(store.id),
        lambda: b.vector_stores.search(store.id, query="cats"),
        lambda: b.vector_stores.files.list(store.id),
        lambda: b.vector_stores.files.retrieve(file_id, vector_store_id=store.id),
        lambda: b.vector_stores.files.content(file_id=file_id, vector_store_id=store.id),
        lambda: b.vector_stores.files.update(
            file_id=file_id, vector_store_id=store.id, attributes={}
        ),
        lambda: b.vector_stores.files.delete(file_id=file_id, vector_store_id=store.id),
        lambda: b.vector_stores.files.create(vector_store_id=store.id, file_id=other_file),
        lambda: b.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id),
        lambda: b.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id),
        lambda: b.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id),
        lambda: b.vector_stores.create(name="theirs", file_ids=[file_id]),  # a's file
    ]
    for call in refusals:
        with pytest.raises(openai.NotFoundError):
            call()
    assert b.vector_stores.list().data == []
    assert a.vector_stores.retrieve(store.id).name == "mine"
    assert settled(a, store.id, file_id).status == "completed"
