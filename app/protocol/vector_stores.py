"""The Vector Stores API: request bodies, objects, chunking strategies and filters (no I/O).

A vector store holds files (each with `attributes` to filter on and the
chunking it was cut with); file batches add many at once. Search takes a
query (or several), `filters` over the attributes (comparison and compound
filters, as OpenAI's), `max_num_results` and a score threshold.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.protocol.responses.schemas.errors import validate_body
from app.protocol.responses.schemas.fields import Flag, Integer, Metadata, Number, Text

AUTO_CHUNKING = {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}
MIN_CHUNK, MAX_CHUNK = 100, 4096
MAX_FILES_PER_REQUEST = 500
MAX_ATTRIBUTES, MAX_ATTRIBUTE_KEY, MAX_ATTRIBUTE_VALUE = 16, 64, 512
MAX_RESULTS, DEFAULT_RESULTS = 50, 10
MAX_EXPIRY_DAYS = 365
COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
COMPOUNDS = ("and", "or")
FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")
RANKERS = ("none", "auto", "default-2024-11-15")
MAX_FILTER_DEPTH = 8


class Strict(Schema):
    class Meta:
        unknown = RAISE


class StaticChunking(Strict):
    max_chunk_size_tokens = Integer(required=True, validate=validate.Range(MIN_CHUNK, MAX_CHUNK))
    chunk_overlap_tokens = Integer(required=True, validate=validate.Range(min=0))

    @validates_schema
    def overlap_at_most_half(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["chunk_overlap_tokens"] > data["max_chunk_size_tokens"] // 2:
            raise ValidationError(
                "must not exceed half of max_chunk_size_tokens.", "chunk_overlap_tokens"
            )


class ChunkingStrategy(Strict):
    type = Text(required=True, validate=validate.OneOf(("auto", "static")))
    static = fields.Nested(StaticChunking)

    @validates_schema
    def static_needs_its_sizes(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["type"] == "static" and "static" not in data:
            raise ValidationError("Missing data for required field.", "static")
        if data["type"] == "auto" and "static" in data:
            raise ValidationError("Unknown field.", "static")


class Attributes(fields.Dict):
    """Up to 16 pairs; keys up to 64 characters, values strings (up to 512), numbers or
    booleans."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        value = super()._deserialize(value, attr, data, **kwargs)
        if len(value) > MAX_ATTRIBUTES:
            raise ValidationError(f"Must have at most {MAX_ATTRIBUTES} key-value pairs.")
        for key, item in value.items():
            if len(key) > MAX_ATTRIBUTE_KEY:
                raise ValidationError(f"Keys must be at most {MAX_ATTRIBUTE_KEY} characters.")
            if isinstance(item, str):
                if len(item) > MAX_ATTRIBUTE_VALUE:
                    raise ValidationError(
                        {key: [f"Values must be at most {MAX_ATTRIBUTE_VALUE} characters."]}
                    )
            elif not isinstance(item, (bool, int, float)):
                raise ValidationError({key: ["Expected a string, a number or a boolean."]})
        return value


class ExpiresAfter(Strict):
    anchor = Text(required=True, validate=validate.OneOf(("last_active_at",)))
    days = Integer(required=True, validate=validate.Range(1, MAX_EXPIRY_DAYS))


class FileIds(fields.List):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            Text(validate=validate.Length(min=1)),
            validate=validate.Length(max=MAX_FILES_PER_REQUEST),
            **kwargs,
        )


class CreateVectorStore(Strict):
    name = Text(allow_none=True, validate=validate.Length(max=256))
    description = Text(allow_none=True, validate=validate.Length(max=512))
    file_ids = FileIds()
    chunking_strategy = fields.Nested(ChunkingStrategy)
    expires_after = fields.Nested(ExpiresAfter, allow_none=True)
    metadata = Metadata(allow_none=True)


class UpdateVectorStore(Strict):
    name = Text(allow_none=True, validate=validate.Length(max=256))
    expires_after = fields.Nested(ExpiresAfter, allow_none=True)
    metadata = Metadata(allow_none=True)


class AddFile(Strict):
    file_id = Text(required=True, validate=validate.Length(min=1))
    attributes = Attributes(allow_none=True)
    chunking_strategy = fields.Nested(ChunkingStrategy)


class UpdateFile(Strict):
    attributes = Attributes(required=True, allow_none=True)


class CreateBatch(Strict):
    file_ids = FileIds()
    files = fields.List(fields.Nested(AddFile), validate=validate.Length(max=MAX_FILES_PER_REQUEST))
    attributes = Attributes(allow_none=True)
    chunking_strategy = fields.Nested(ChunkingStrategy)

    @validates_schema
    def one_list_of_files(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("file_ids" in data) == ("files" in data):
            raise ValidationError("Give exactly one of 'file_ids' and 'files'.", "file_ids")
        if not data.get("file_ids", data.get("files")):
            raise ValidationError("Must name at least one file.", "file_ids")


class Filter(fields.Field):
    """A comparison filter (`key`, `type`, `value`) or a compound one (`and`/`or` of filters)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        check_filter(value, 0)
        return value


class RankingOptions(Strict):
    ranker = Text(validate=validate.OneOf(RANKERS))
    score_threshold = Number(validate=validate.Range(0.0, 1.0))
    hybrid_search = fields.Dict()


class QueryField(fields.Field):
    """A query string, or a non-empty list of them."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        queries = [value] if isinstance(value, str) else value
        if not isinstance(queries, list) or not queries:
            raise ValidationError("Expected a string or a non-empty list of strings.")
        if not all(isinstance(query, str) and query.strip() for query in queries):
            raise ValidationError("Every query must be a non-empty string.")
        return value


class SearchSettings(Strict):
    """How a search is narrowed and cut: the search endpoint's, and file_search's."""

    filters = Filter(allow_none=True)
    max_num_results = Integer(validate=validate.Range(1, MAX_RESULTS))
    ranking_options = fields.Nested(RankingOptions)


class Search(SearchSettings):
    query = QueryField(required=True)
    rewrite_query = Flag()


class ToolRanking(Schema):
    class Meta:
        unknown = EXCLUDE

    score_threshold = Number(allow_none=True, validate=validate.Range(0.0, 1.0))


class FileSearchTool(SearchSettings):
    """A response's `{"type": "file_search", …}` tool: its stores, and the same settings
    (each may be null; what else the API's tool object holds is let through)."""

    class Meta:
        unknown = EXCLUDE

    vector_store_ids = fields.List(Text(), required=True, validate=validate.Length(min=1))
    max_num_results = Integer(allow_none=True, validate=validate.Range(1, MAX_RESULTS))
    ranking_options = fields.Nested(ToolRanking, allow_none=True)


class _Tools(Schema):
    tools = fields.Nested(FileSearchTool)


def check_file_search_tool(tool: dict[str, Any]) -> None:
    """Refuse a bad file_search tool as one 400 naming `tools.<field>`."""
    validate_body(_Tools(), {"tools": tool})


SCHEMAS: dict[str, Schema] = {
    "create": CreateVectorStore(),
    "update": UpdateVectorStore(),
    "add_file": AddFile(),
    "update_file": UpdateFile(),
    "create_batch": CreateBatch(),
    "search": Search(),
}


def validate_vector_store_request(kind: str, body: Any) -> dict[str, Any]:
    """Check a vector stores API body (`create`, `update`, `add_file`, …)."""
    validate_body(SCHEMAS[kind], body)
    return body


def check_filter(value: Any, depth: int) -> None:
    if depth > MAX_FILTER_DEPTH:
        raise ValidationError(f"Filters may nest at most {MAX_FILTER_DEPTH} deep.")
    if not isinstance(value, dict):
        raise ValidationError("Expected a filter object.")
    kind = value.get("type")
    if kind in COMPOUNDS:
        if set(value) != {"type", "filters"}:
            raise ValidationError("A compound filter has exactly 'type' and 'filters'.")
        inner = value["filters"]
        if not isinstance(inner, list) or not inner:
            raise ValidationError("'filters' must be a non-empty list of filters.")
        for item in inner:
            check_filter(item, depth + 1)
        return
    if kind not in COMPARISONS:
        raise ValidationError(f"'type' must be one of {', '.join(COMPARISONS + COMPOUNDS)}.")
    if set(value) != {"type", "key", "value"}:
        raise ValidationError("A comparison filter has exactly 'type', 'key' and 'value'.")
    if not isinstance(value["key"], str) or not value["key"]:
        raise ValidationError("'key' must be a non-empty string.")
    compared = value["value"]
    if kind in ("in", "nin"):
        if not isinstance(compared, list) or not all(_scalar(item) for item in compared):
            raise ValidationError(f"'{kind}' compares with a list of strings or numbers.")
    elif not _scalar(compared) and not isinstance(compared, bool):
        raise ValidationError("'value' must be a string, a number or a boolean.")


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def matches(filter_: dict[str, Any] | None, attributes: dict[str, Any]) -> bool:
    """Whether a file's attributes pass a (checked) filter; a missing key fails a comparison."""
    if filter_ is None:
        return True
    kind = filter_["type"]
    if kind == "and":
        return all(matches(inner, attributes) for inner in filter_["filters"])
    if kind == "or":
        return any(matches(inner, attributes) for inner in filter_["filters"])
    key, wanted = filter_["key"], filter_["value"]
    if key not in attributes:
        return kind in ("ne", "nin")
    have = attributes[key]
    if kind in ("in", "nin"):
        return any(_equal(have, item) for item in wanted) == (kind == "in")
    if kind in ("eq", "ne"):
        return _equal(have, wanted) == (kind == "eq")
    if not _comparable(have, wanted):
        return False
    return {
        "gt": have > wanted,
        "gte": have >= wanted,
        "lt": have < wanted,
        "lte": have <= wanted,
    }[kind]


def _equal(have: Any, wanted: Any) -> bool:
    """Equal as JSON values: 1 equals 1.0, but a boolean equals only a boolean."""
    if isinstance(have, bool) or isinstance(wanted, bool):
        return isinstance(have, bool) and isinstance(wanted, bool) and have == wanted
    return have == wanted


def _numbers(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _comparable(have: Any, wanted: Any) -> bool:
    return _numbers(have, wanted) or (isinstance(have, str) and isinstance(wanted, str))


def chunking_object(strategy: dict[str, Any] | None) -> dict[str, Any]:
    """A chunking strategy as a store file reports it (`auto` is the static 800/400)."""
    if strategy is None or strategy["type"] == "auto":
        return {"type": "static", "static": dict(AUTO_CHUNKING)}
    return {"type": "static", "static": dict(strategy["static"])}


def file_counts(counts: dict[str, int]) -> dict[str, int]:
    by_status = {status: counts.get(status, 0) for status in FILE_STATUSES}
    return {**by_status, "total": sum(by_status.values())}


def vector_store_object(
    row: dict[str, Any], counts: dict[str, int], usage_bytes: int, now: int
) -> dict[str, Any]:
    """A vector store as the API returns it (`row`: its stored fields; its files by status,
    and the bytes they take)."""
    expired = row["expires_at"] is not None and row["expires_at"] <= now
    counted = file_counts(counts)
    status = "expired" if expired else ("in_progress" if counted["in_progress"] else "completed")
    days = row["expires_days"]
    return {
        "id": row["id"],
        "object": "vector_store",
        "created_at": row["created_at"],
        "name": row["name"] or "",
        "description": row["description"],
        "usage_bytes": usage_bytes,
        "file_counts": counted,
        "status": status,
        "expires_after": {"anchor": "last_active_at", "days": days} if days else None,
        "expires_at": row["expires_at"],
        "last_active_at": row["last_active_at"],
        "metadata": row["metadata"],
    }


def store_file_object(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["file_id"],
        "object": "vector_store.file",
        "usage_bytes": row["usage_bytes"],
        "created_at": row["created_at"],
        "vector_store_id": row["vector_store_id"],
        "status": row["status"],
        "last_error": row["last_error"],
        "chunking_strategy": row["chunking"],
        "attributes": row["attributes"],
    }


def batch_object(row: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    counted = file_counts(counts)
    if row["cancelled_at"] is not None:
        status = "cancelled"
    elif counted["in_progress"]:
        status = "in_progress"
    elif counted["total"] and counted["failed"] == counted["total"]:
        status = "failed"
    else:
        status = "completed"
    return {
        "id": row["id"],
        "object": "vector_store.files_batch",
        "created_at": row["created_at"],
        "vector_store_id": row["vector_store_id"],
        "status": status,
        "file_counts": counted,
    }


def search_page(queries: list[str], results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "vector_store.search_results.page",
        "search_query": queries,
        "data": results,
        "has_more": False,
        "next_page": None,
    }
