"""Cutting a file's text into overlapping chunks of a number of tokens.

Tokens are counted as OpenAI's tokenizers roughly count English: a word
piece of up to four letters or digits, or one other character, with the
whitespace before it. So `auto` (800 tokens, 400 of overlap) gives chunks
of about 3,200 characters, as OpenAI's do. A chunk always starts and ends
at a token's edge, which is a character's: Python strings are code points,
so no UTF-8 character is ever split (an emoji, a CJK character and a
combining mark are each a token of their own or part of a word piece).
"""

from __future__ import annotations

import re

TOKEN = re.compile(r"\s*(?:\w{1,4}|[^\w\s])", re.UNICODE)


def token_starts(text: str) -> list[int]:
    """The offset in `text` where each token starts (its leading whitespace included)."""
    return [match.start() for match in TOKEN.finditer(text)]


def chunk_text(text: str, max_tokens: int, overlap: int) -> list[str]:
    """The chunks of `text`: `max_tokens` tokens each, each starting `max_tokens - overlap`
    tokens after the one before; stripped of the whitespace at their ends."""
    starts = token_starts(text)
    if not starts:
        return []
    step = max(1, max_tokens - overlap)
    chunks = []
    for first in range(0, len(starts), step):
        last = first + max_tokens
        end = starts[last] if last < len(starts) else len(text)
        chunk = text[starts[first] : end].strip()
        if chunk:
            chunks.append(chunk)
        if last >= len(starts):
            break
    return chunks


def count_tokens(text: str) -> int:
    return len(token_starts(text))
