"""The `file_search` tool as the gateway runs it: what the model is given, and what it reads.

The model sees a function, `file_search`, that takes `queries`. Its call
becomes a `file_search_call` item; the results go back to the model as
numbered passages (`[1] notes.md: …`), and the model is asked to cite a
passage by writing its number in brackets where it uses it. Each such
marker in the answer becomes a `file_citation` annotation at that place
(the marker stays in the text, so the streamed deltas and the final text
agree). Numbers run on across the searches of one response.
"""

from __future__ import annotations

import json
import re
from typing import Any

FILE_SEARCH = "file_search"
FUNCTION_TOOL = {
    "type": "function",
    "name": FILE_SEARCH,
    "description": (
        "Search the user's files for passages relevant to the request. Use it whenever "
        "the answer may be in those files."
    ),
    "parameters": {
        "type": "object",
        "properties": {
            "queries": {
                "type": "array",
                "items": {"type": "string"},
                "description": "One or more search queries, each a few words.",
            }
        },
        "required": ["queries"],
    },
    "strict": False,
}
CITE = "Cite a passage where you use it by writing its number in brackets, for example [1]."
MARKER = re.compile(r"\[(\d+)\]")


def queries_of(arguments: str, fallback: str) -> list[str]:
    """The queries a call's JSON arguments ask for (the fallback if they name none)."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        parsed = {}
    queries = parsed.get("queries") if isinstance(parsed, dict) else None
    if isinstance(queries, str):
        queries = [queries]
    if isinstance(parsed, dict) and isinstance(parsed.get("query"), str):
        queries = [*(queries or []), parsed["query"]]
    kept = [q.strip() for q in queries or () if isinstance(q, str) and q.strip()]
    return kept or [fallback]


def results_text(results: list[dict[str, Any]] | None, first: int = 1) -> str:
    """The passages as the model reads them, numbered from `first`."""
    if results is None:
        return "(The results of this search were not kept.)"
    if not results:
        return "No passage in the files matched the search."
    passages = [
        f"[{number}] {result.get('filename') or result.get('file_id')}:\n{result.get('text', '')}"
        for number, result in enumerate(results, start=first)
    ]
    return "\n\n".join(passages) + "\n\n" + CITE


def citations(text: str, sources: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The `file_citation` annotations of an answer: one per marker naming a source
    (`sources[n - 1]` is the file of passage n), at the marker's place."""
    found = []
    for match in MARKER.finditer(text):
        number = int(match.group(1))
        if 1 <= number <= len(sources):
            file_id, filename = sources[number - 1]
            found.append(
                {
                    "type": "file_citation",
                    "file_id": file_id,
                    "filename": filename,
                    "index": match.start(),
                }
            )
    return found


def call_item(item_id: str, queries: list[str], status: str = "in_progress") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "file_search_call",
        "status": status,
        "queries": queries,
        "results": None,
    }
