"""The text of an uploaded file, for a model to read: PDF, HTML, and any UTF-8 text.

PDF pages are read with pypdf, one page after another. HTML loses its
markup (scripts and styles with it); JSON, JSONL, CSV, Markdown, source
code and plain text are the text itself. Anything else (bytes that are not
UTF-8, or hold a NUL) has no text: `extract_text` says None, and the caller
decides (an image is sent as an image, other bytes as a file part).
"""

from __future__ import annotations

import io
import logging
from html.parser import HTMLParser

log = logging.getLogger(__name__)

PDF_MAGIC = b"%PDF-"
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
IMAGE_TYPES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}
SKIPPED_TAGS = ("script", "style", "head", "template")
BLOCK_TAGS = ("p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section")


class ExtractError(ValueError):
    """The file claims a format it does not hold (a PDF pypdf cannot read)."""


def extract_text(filename: str, data: bytes) -> str | None:
    """The file's text, or None if it has none (binary, or an image)."""
    if data.startswith(PDF_MAGIC):
        return pdf_text(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    if filename.lower().endswith(HTML_SUFFIXES):
        return html_text(text)
    return text


def pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        pages = PdfReader(io.BytesIO(data)).pages
        return "\n\n".join(page.extract_text() or "" for page in pages).strip()
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise ExtractError(f"the PDF could not be read ({exc.__class__.__name__})") from exc


def html_text(markup: str) -> str:
    parser = _Text()
    parser.feed(markup)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def image_type(data: bytes) -> str | None:
    """The media type of an image the gateway can name (PNG, JPEG, GIF, WebP), or None."""
    for magic, media_type in IMAGE_TYPES.items():
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in SKIPPED_TAGS:
            self._skipping += 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED_TAGS and self._skipping:
            self._skipping -= 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)
