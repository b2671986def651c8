"""Use case: ingest the files added to vector stores, in the background, on any worker.

A store file starts `in_progress`. Every worker runs an `Ingester`: it
claims one waiting file at a time in the store (a conditional update that
sets a lease, `claimed_until`), reads its bytes and text, cuts the text
into chunks, embeds them when an embeddings model is configured, and
stores the chunks and `completed` in one transaction, or `failed` with a
`last_error`. The claim holds no connection while the file is read and
embedded. A file cancelled or removed meanwhile is left as it is (its
finish finds its claim gone); a worker that dies mid-file leaves its claim
to lapse, and another worker (or the same one restarted) takes the file
again. Adding a file wakes this worker's ingester at once; the others look
every `POLL_SECONDS`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from app.backends.embeddings import Embeddings, pack
from app.errors import GatewayError
from app.services import chunking, extract
from app.store import db
from app.store import vector_stores as store
from app.store.blobs import BlobStore

log = logging.getLogger(__name__)

LEASE_SECONDS = 120.0
POLL_SECONDS = 2.0
# The most of one file that is read for search (its text is held while it is cut).
MAX_INGEST_BYTES = 64 * 1024 * 1024


@dataclass
class Failure:
    code: str  # server_error, unsupported_file or invalid_file, as the API names them
    message: str


class Ingester:
    """This worker's ingester: a thread (a greenlet under gevent) started on first use."""

    def __init__(self, blobs: BlobStore, embeddings: Embeddings | None) -> None:
        self.blobs = blobs
        self.embeddings = embeddings
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._database: Any = None

    def start(self) -> None:
        """Start ingesting beside this worker's requests (once; again after a fork)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._database = db.obj
            self._thread = threading.Thread(
                target=self._run, name="vector-store-ingester", daemon=True
            )
            self._thread.start()

    def nudge(self) -> None:
        """A file was added: look now."""
        self.start()
        self._wake.set()

    def drain(self) -> int:
        """Ingest every waiting file here and now; return how many were taken."""
        taken = 0
        while self.ingest_one():
            taken += 1
        return taken

    def ingest_one(self) -> bool:
        """Claim and ingest one waiting file; False if none was waiting."""
        with db.connection_context():
            now = time.time()
            pending = store.next_pending(now)
            if pending is None:
                return False
            until = now + LEASE_SECONDS
            claimed = store.claim(*pending, now, until)
        if claimed is None:
            return True  # another ingester took it first
        outcome = self._ingest(claimed)
        with db.connection_context():
            if isinstance(outcome, Failure):
                store.fail(*pending, until, outcome.code, outcome.message)
                log.warning("vector store %s: file %s failed: %s", *pending, outcome.message)
            else:
                rows, usage = outcome
                store.finish(*pending, until, rows, usage)
        return True

    def _run(self) -> None:
        # An app made later in this process binds `db` anew: this ingester is then not its.
        while db.obj is self._database:
            try:
                while db.obj is self._database and self.ingest_one():
                    time.sleep(0)  # a cooperative yield under gevent
            except Exception:  # the next look tries again; serving goes on
                log.exception("ingesting vector store files failed")
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def _ingest(self, claimed: dict[str, Any]) -> Failure | tuple[list[dict[str, Any]], int]:
        store_file, file = claimed["store_file"], claimed["file"]
        if file is None:
            return Failure("invalid_file", "The file was deleted.")
        if file["bytes"] > MAX_INGEST_BYTES:
            return Failure(
                "unsupported_file",
                f"The file is larger than vector stores take ({MAX_INGEST_BYTES} bytes).",
            )
        try:
            data = self.blobs.read(file["id"])
            text = extract.extract_text(file["filename"], data)
        except extract.ExtractError as exc:
            return Failure("invalid_file", f"The file could not be read: {exc}.")
        except (GatewayError, OSError) as exc:
            return Failure("server_error", getattr(exc, "message", str(exc)))
        if text is None:
            return Failure("unsupported_file", "The file holds no text the gateway can read.")
        sizes = store_file["chunking"]["static"]
        pieces = chunking.chunk_text(
            text, sizes["max_chunk_size_tokens"], sizes["chunk_overlap_tokens"]
        )
        vectors: list[Any] = [None] * len(pieces)
        if self.embeddings is not None and pieces:
            try:
                vectors = [pack(vector) for vector in self.embeddings.embed(pieces)]
            except GatewayError as exc:
                return Failure("server_error", f"Embedding the file failed: {exc.message}")
        rows = [
            {
                "vector_store_id": store_file["vector_store_id"],
                "file_id": file["id"],
                "seq": seq,
                "text": piece,
                "embedding": vector,
            }
            for seq, (piece, vector) in enumerate(zip(pieces, vectors, strict=True))
        ]
        usage = sum(len(piece.encode()) for piece in pieces)
        usage += sum(len(vector) for vector in vectors if vector is not None)
        return rows, usage
