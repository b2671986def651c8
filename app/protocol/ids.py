"""Identifiers in the shapes the OpenAI API uses (`resp_…`, `msg_…`, `fc_…`).

An id is 48 hex digits after its prefix: the time it was made (13 digits
of microseconds since the epoch), then 140 random bits. Ids made later
sort later, as OpenAI's own do (they start with the time too). So the
store's indexes on ids grow at their end, where the pages a commit
touches are few and already in the cache, not at a random place among
millions of rows (docs/BENCHMARKS.md, "Store writes"). The random part
keeps them unguessable; a clock set back only costs that locality.
"""

from __future__ import annotations

import secrets
import time

TIME_DIGITS = 13  # hex digits of microseconds since the epoch: enough until 2112
RANDOM_BITS = 140
RANDOM_DIGITS = RANDOM_BITS // 4
ITEM_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
    "local_shell_call": "lsh",
    "local_shell_call_output": "lsho",
    "reasoning": "rs",
    "file_search_call": "fs",
}


def new_id(prefix: str, separator: str = "_") -> str:
    """Return a fresh id such as `resp_6619bd96c660e…`: the time, then random digits
    (files are `file-…`, as OpenAI names them)."""
    made_at = time.time_ns() // 1000
    random = secrets.randbits(RANDOM_BITS)
    return f"{prefix}{separator}{made_at:0{TIME_DIGITS}x}{random:0{RANDOM_DIGITS}x}"


def new_item_id(item_type: str) -> str:
    """Return a fresh id for an item of `item_type`."""
    return new_id(ITEM_PREFIXES.get(item_type, "item"))


def new_call_id() -> str:
    """Return a fresh tool call id, for backends that send none."""
    return new_id("call")
