"""Logging set-up, and the masking that keeps keys out of every log line."""

from __future__ import annotations

import json
import logging
import re

KEY_PATTERN = re.compile(r"(?i)(bearer\s+|api[_-]?key[\"'=:\s]+)([A-Za-z0-9_\-\.]{12,})")
# A gateway virtual key wherever it stands (app/auth/tokens.py: its format).
VIRTUAL_KEY_PATTERN = re.compile(r"gw-[a-z0-9]{8}_[A-Za-z0-9_-]{43}")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def mask_key(key: str) -> str:
    """Show a key as its first 6 and last 4 characters."""
    if len(key) <= 10:
        return "*" * len(key)
    return f"{key[:6]}...{key[-4:]}"


def mask_secrets(text: str) -> str:
    """Mask every bearer token or api key that appears in `text`."""
    text = KEY_PATTERN.sub(lambda m: m.group(1) + mask_key(m.group(2)), text)
    return VIRTUAL_KEY_PATTERN.sub(lambda m: mask_key(m.group(0)), text)


class MaskingFilter(logging.Filter):
    """Rewrites each record's message with keys masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a record's `fields` (see `log_event`) become its keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        entry.update(fields if isinstance(fields, dict) else {"message": record.getMessage()})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log_event(logger: logging.Logger, event: str, fields: dict, json_logs: bool) -> None:
    """Log `event` with its fields at INFO: `event key=value …`, or keys of the JSON line."""
    if json_logs:
        entry = {"event": event, **fields}
        logger.info(json.dumps(entry), extra={"fields": entry})
    else:
        logger.info(" ".join([event, *(f"{key}={value}" for key, value in fields.items())]))


def configure_logging(level: str, json_logs: bool = False) -> None:
    """Log to stderr at `level` (text or JSON lines), with key masking on the root handler."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if any(isinstance(f, MaskingFilter) for f in h.filters)]
    if not ours:
        handler = logging.StreamHandler()
        handler.addFilter(MaskingFilter())
        root.addHandler(handler)
        ours = [handler]
    for handler in ours:
        handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter(LOG_FORMAT))
    root.setLevel(level.upper())
