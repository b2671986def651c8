"""One page of a query by an id cursor (ids that sort by the time they were made)."""

from __future__ import annotations

from typing import Any


def id_page(
    query: Any, key: Any, limit: int, order: str, after: str | None, before: str | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """The rows (as dicts) past `after` / short of `before` in `order`, at most `limit`, and
    whether more follow."""
    ascending = order == "asc"
    if after is not None:
        query = query.where(key > after if ascending else key < after)
    if before is not None:
        query = query.where(key < before if ascending else key > before)
    rows = list(query.order_by(key.asc() if ascending else key.desc()).limit(limit + 1).dicts())
    return rows[:limit], len(rows) > limit
