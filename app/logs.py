"""Logging set-up, and the masking that keeps keys out of every log line."""

from __future__ import annotations

import logging
import re

KEY_PATTERN = re.compile(r"(?i)(bearer\s+|api[_-]?key[\"'=:\s]+)([A-Za-z0-9_\-\.]{12,})")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def mask_key(key: str) -> str:
    """Show a key as its first 6 and last 4 characters."""
    if len(key) <= 10:
        return "*" * len(key)
    return f"{key[:6]}...{key[-4:]}"


def mask_secrets(text: str) -> str:
    """Mask every bearer token or api key that appears in `text`."""
    return KEY_PATTERN.sub(lambda m: m.group(1) + mask_key(m.group(2)), text)


class MaskingFilter(logging.Filter):
    """Rewrites each record's message with keys masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(level: str) -> None:
    """Log to stderr at `level`, with key masking on the root handler."""
    root = logging.getLogger()
    if not any(isinstance(f, MaskingFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(MaskingFilter())
        root.addHandler(handler)
    root.setLevel(level.upper())
