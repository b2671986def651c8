"""compact_json gives what `json` gives: the same text, the same values, the same errors."""

from __future__ import annotations

import json

import pytest

from app import compact_json

VALUES = [
    {"type": "response.output_text.delta", "sequence_number": 3, "delta": " héllo", "logprobs": []},
    {"nested": {"list": [1, 2.5, -0.0, None, True, False]}, "quote": 'a "b" \\ c\n\t'},
    {"big": 10**40, "small": 1e-300, "emoji": "🙂", "separator": "\u2028", "nul": "\x00"},
    "just a string",
    42,
    [],
    {},
    None,
]


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("value", VALUES)
def test_dumps_writes_what_json_dumps_writes(value: object) -> None:
    assert compact_json.dumps(value) == _compact(value)


@pytest.mark.parametrize("value", VALUES)
def test_loads_reads_back_what_was_written(value: object) -> None:
    text = compact_json.dumps(value)
    assert compact_json.loads(text) == json.loads(text)


def test_loads_takes_surrounding_whitespace_as_json_does() -> None:
    assert compact_json.loads(' \n{"a": [1, 2]}\t ') == {"a": [1, 2]}


@pytest.mark.parametrize("text", ["", " ", "{", '{"a":1', "[1,]", "1 2", '{"a":1}x', "nan", "'a'"])
def test_loads_refuses_what_json_refuses_with_its_message(text: str) -> None:
    with pytest.raises(ValueError) as expected:
        json.loads(text)
    with pytest.raises(ValueError) as refused:
        compact_json.loads(text)
    assert str(refused.value) == str(expected.value)


def test_dumps_refuses_what_json_cannot_encode() -> None:
    with pytest.raises(TypeError):
        compact_json.dumps({"when": object()})
