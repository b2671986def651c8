"""The embeddings model: an OpenAI-compatible `/embeddings` endpoint, for vector stores.

With `EMBEDDING_MODEL` set, every chunk a vector store ingests is embedded
(in batches of `BATCH`), and every search query; the vectors are kept as
float32 bytes beside the chunk. The endpoint is `EMBEDDING_ENDPOINT`
(default: the first backend's base URL), with `EMBEDDING_API_KEY` (default:
that backend's key). Calls go through the same transport as the model's:
pools, timeouts, a breaker, and errors in the gateway's shape.
"""

from __future__ import annotations

import array
import math
from dataclasses import replace
from typing import Any

from app.auth.principal import ANONYMOUS_PRINCIPAL
from app.backends.dialects.base import Backend
from app.backends.transport import read_text
from app.compact_json import loads
from app.config import BackendSettings
from app.errors import BadGateway

BATCH = 64
EMBEDDINGS_SUFFIX = "/embeddings"


class Embeddings(Backend):
    """The configured embeddings model."""

    def __init__(self, settings: BackendSettings, model: str) -> None:
        self.model = model
        super().__init__(settings)

    def endpoint(self) -> str:
        return self.settings.base_url + EMBEDDINGS_SUFFIX

    def embed(self, texts: list[str]) -> list[list[float]]:
        """The vectors of `texts`, in order, unit length (so a dot product is the cosine)."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            batch = texts[start : start + BATCH]
            response = self.post(
                {"model": self.model, "input": batch}, ANONYMOUS_PRINCIPAL, stream=False
            )
            vectors += _vectors(loads(read_text(response)), len(batch), self.name)
        return [unit(vector) for vector in vectors]


def embeddings_for(settings: Any) -> Embeddings | None:
    """The embeddings model the settings name, or None (vector stores search by keywords)."""
    files = settings.files
    if not files.embedding_model:
        return None
    first = settings.backends[0]
    backend = replace(
        first,
        name="embeddings",
        base_url=(files.embedding_endpoint or first.base_url).rstrip("/"),
        api_key=files.embedding_api_key or (None if files.embedding_endpoint else first.api_key),
        models=(files.embedding_model,),
    )
    return Embeddings(backend, files.embedding_model)


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def pack(vector: list[float]) -> bytes:
    return array.array("f", vector).tobytes()


def unpack(data: bytes) -> array.array:
    vector = array.array("f")
    vector.frombytes(data)
    return vector


def _vectors(body: Any, expected: int, name: str) -> list[list[float]]:
    data = body.get("data") if isinstance(body, dict) else None
    try:
        ordered = sorted(data, key=lambda item: item["index"])
        vectors = [[float(x) for x in item["embedding"]] for item in ordered]
    except (TypeError, KeyError, ValueError):
        vectors = []
    if len(vectors) != expected or not all(vectors):
        raise BadGateway(f"Backend '{name}' answered an embeddings request without the vectors")
    return vectors
