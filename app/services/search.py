"""Searching vector stores: keywords always, and meaning too when chunks have embeddings.

Every chunk of the stores' completed files whose attributes pass the
filters is scored against each query, and keeps its best score:

- keywords: the query's words found in the chunk, each weighted by how
  rare it is among the candidates (BM25's idf) and saturated by how often
  it occurs, over the weight of all the query's words: 0 (none found) to
  about 1 (all, often);
- meaning (with `EMBEDDING_MODEL`): the cosine of the query's embedding and
  the chunk's, 0 to 1;
- with both, 0.7 of the meaning and 0.3 of the keywords.

The best `max_num_results` at or above `score_threshold` are the results,
one chunk each. The candidates are read whole from the store, so a search
costs time in proportion to the stores' size: about 0.14 s per thousand
chunks of 500 words here (docs/DESIGN.md). It yields every few hundred
chunks, so the worker's other requests go on meanwhile.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from typing import Any

from app.backends.embeddings import Embeddings, unpack
from app.protocol.vector_stores import DEFAULT_RESULTS, matches
from app.store import vector_stores as store

WORD = re.compile(r"\w+", re.UNICODE)
SEMANTIC_WEIGHT = 0.7
SATURATION = 0.5  # a word found once counts 2/3, twice 4/5, …
YIELD_EVERY = 200  # chunks scored between cooperative yields (other greenlets run meanwhile)


def search_stores(
    vector_store_ids: list[str],
    queries: list[str],
    settings: dict[str, Any],
    embeddings: Embeddings | None,
) -> list[dict[str, Any]]:
    """Search with a request's settings (`filters`, `max_num_results`,
    `ranking_options.score_threshold`: the search endpoint's body, or a file_search tool),
    and count it as the stores' activity."""
    ranking = settings.get("ranking_options") or {}
    results = search(
        vector_store_ids,
        queries,
        filters=settings.get("filters"),
        max_results=settings.get("max_num_results") or DEFAULT_RESULTS,
        threshold=ranking.get("score_threshold") or 0.0,
        embeddings=embeddings,
    )
    now = int(time.time())
    for vector_store_id in vector_store_ids:
        store.touch_store(vector_store_id, now)
    return results


def search(
    vector_store_ids: list[str],
    queries: list[str],
    *,
    filters: dict[str, Any] | None,
    max_results: int,
    threshold: float,
    embeddings: Embeddings | None,
) -> list[dict[str, Any]]:
    """The best chunks for `queries` across the stores, as the API's search results."""
    files = store.searchable_files(vector_store_ids)
    candidates = [
        chunk
        for chunk in store.chunks(vector_store_ids)
        if (chunk[0], chunk[1]) in files
        and matches(filters, files[chunk[0], chunk[1]]["attributes"])
    ]
    if not candidates:
        return []
    words = []
    for number, (_, _, _, text, _) in enumerate(candidates):
        words.append(Counter(WORD.findall(text.lower())))
        _yield_now_and_then(number)
    vectors = [unpack(embedding) if embedding else None for *_, embedding in candidates]
    semantic = embeddings is not None and any(vector is not None for vector in vectors)
    query_vectors = embeddings.embed(queries) if semantic and embeddings else [None] * len(queries)
    best = [0.0] * len(candidates)
    for query, query_vector in zip(queries, query_vectors, strict=True):
        for index, score in enumerate(_scores(query, query_vector, words, vectors)):
            best[index] = max(best[index], score)
    ranked = sorted(
        (index for index, score in enumerate(best) if score > 0 and score >= threshold),
        key=lambda index: -best[index],
    )[:max_results]
    results = []
    for index in ranked:
        store_id, file_id, _, text, _ = candidates[index]
        file = files[store_id, file_id]
        results.append(
            {
                "file_id": file_id,
                "filename": file["filename"],
                "score": round(best[index], 6),
                "attributes": file["attributes"],
                "content": [{"type": "text", "text": text}],
            }
        )
    return results


def _scores(
    query: str,
    query_vector: list[float] | None,
    words: list[Counter],
    vectors: list[Any],
) -> list[float]:
    terms = set(WORD.findall(query.lower()))
    count = len(words)
    holding = {term: sum(1 for counted in words if term in counted) for term in terms}
    weights = {
        term: math.log(1 + (count - found + 0.5) / (found + 0.5)) for term, found in holding.items()
    }
    total = sum(weights.values()) or 1.0
    scores = []
    for number, (counted, vector) in enumerate(zip(words, vectors, strict=True)):
        _yield_now_and_then(number)
        keyword = sum(
            weight * counted[term] / (counted[term] + SATURATION)
            for term, weight in weights.items()
            if term in counted
        )
        keyword /= total
        if query_vector is None or vector is None:
            scores.append(keyword)
            continue
        cosine = max(0.0, min(1.0, sum(a * b for a, b in zip(query_vector, vector, strict=False))))
        scores.append(SEMANTIC_WEIGHT * cosine + (1 - SEMANTIC_WEIGHT) * keyword)
    return scores


def _yield_now_and_then(number: int) -> None:
    """Let the worker's other requests run: a large search is seconds of CPU."""
    if number % YIELD_EVERY == YIELD_EVERY - 1:
        time.sleep(0)  # a cooperative yield under gevent
