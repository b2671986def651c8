"""Compact JSON through the standard library's C encoder and scanner, called directly.

`json.dumps` with options builds a new encoder (and its C half) on every
call, and `json.loads` passes through three Python functions and two regex
matches before the C scanner runs. On a stream that is paid for every
token, twice: these two cut it in half (docs/DESIGN.md). The results are
those of `json.dumps(value, separators=(",", ":"), ensure_ascii=False)`
and of `json.loads(text)`: whatever the fast path does not take whole
(surrounding whitespace, a syntax error) goes to `json.loads`, which
decides and explains. It serves every layer that writes compact JSON:
stream events and chunks (protocol), stored rows (store) and Chat request
bodies (backends).
"""

from __future__ import annotations

import json
from json.encoder import c_make_encoder, encode_basestring
from typing import Any

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)
_scan_once = json.JSONDecoder().scan_once
if c_make_encoder is None:  # a Python built without the _json accelerator
    _encode = None
else:
    _encode = c_make_encoder(
        None,  # no check for circular references: the values are parsed JSON or built here
        _encoder.default,
        encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        True,
    )


def dumps(value: Any) -> str:
    """`value` as compact JSON, non-ASCII characters kept as they are."""
    if _encode is None:
        return _encoder.encode(value)
    return "".join(_encode(value, 0))


def loads(text: str) -> Any:
    """The value `text` holds; raises `ValueError` as `json.loads` does."""
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value
