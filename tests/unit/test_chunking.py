"""Chunks of a file's text: by tokens, overlapping, never splitting a character."""

from __future__ import annotations

import pytest

from app.services.chunking import chunk_text, count_tokens, token_starts
from app.services.extract import extract_text, html_text, image_type
from tests.documents import pdf, png


def test_tokens_are_word_pieces_of_up_to_four_characters_or_one_other_character():
    assert count_tokens("tokenization") == 3
    assert count_tokens("Hi, there!") == 5  # Hi , ther e !
    assert count_tokens("") == 0 and count_tokens("   ") == 0


def test_chunks_hold_at_most_the_tokens_and_overlap_by_the_overlap():
    text = " ".join(f"w{n:03d}" for n in range(1000))
    chunks = chunk_text(text, max_tokens=100, overlap=40)
    assert all(count_tokens(chunk) <= 100 for chunk in chunks)
    assert chunks[1].split()[0] == text.split()[60]  # starts 100 - 40 tokens on
    assert chunks[-1].endswith("w999")
    assert chunk_text("short text", 800, 400) == ["short text"]


@pytest.mark.parametrize(
    "text",
    [
        "😀" * 500,
        "日本語のテキスト" * 200,
        "e\u0301" * 400,  # e + a combining accent
        "naïve café " * 300,
    ],
)
def test_no_chunk_splits_a_character_and_together_they_hold_every_character(text):
    chunks = chunk_text(text, max_tokens=100, overlap=0)
    assert len(chunks) > 1
    for chunk in chunks:
        chunk.encode("utf-8")  # a lone surrogate or half a character would not encode
    assert "".join(chunks).replace(" ", "") == text.replace(" ", "")
    starts = token_starts(text)
    assert all(0 <= start < len(text) for start in starts)


def test_text_is_extracted_from_pdf_html_and_utf8_and_not_from_bytes():
    assert (
        extract_text("a.pdf", pdf("First page.", "Second page.")) == "First page.\n\nSecond page."
    )
    assert (
        extract_text("a.htm", b"<p>One</p><script>no()</script><p>Two &lt;3</p>") == "One\nTwo <3"
    )
    assert extract_text("a.json", '{"k": "ü"}'.encode()) == '{"k": "ü"}'
    assert extract_text("a.txt", b"\xef\xbb\xbfwith a BOM") == "with a BOM"
    assert extract_text("a.bin", b"\x00\x01\x02") is None
    assert extract_text("a.bin", b"\xff\xfe\xfd") is None
    assert extract_text("dot.png", png()) is None
    assert image_type(png()) == "image/png" and image_type(b"plain") is None
    assert html_text("<div>a<br>b</div>") == "a\nb"
