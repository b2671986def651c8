"""Marshmallow's nested error messages as one OpenAI-shaped 400, naming the parameter."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema

from app.errors import InvalidRequest
from app.protocol.responses.schemas.fields import ERROR_CODES, TYPE_ERROR_PREFIXES


def validate_body(schema: Schema, body: Any) -> None:
    """Refuse `body` at its first problem, as one OpenAI-shaped 400."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    errors = schema.validate(body)
    if errors:
        raise invalid_request_from(errors)


def invalid_request_from(errors: dict[Any, Any]) -> InvalidRequest:
    """Turn marshmallow's nested error dict into one OpenAI-shaped 400."""
    path, message = _first_error(errors)
    param = _param_name(path)
    if message == "Unknown field.":
        text, code = f"Unknown parameter: '{param}'.", "unknown_parameter"
    elif message == "Missing data for required field.":
        text, code = f"Missing required parameter: '{param}'.", "missing_required_parameter"
    elif message in ERROR_CODES:
        text, code = f"Invalid '{param}': {message}", ERROR_CODES[message]
    elif message.startswith(TYPE_ERROR_PREFIXES):
        text, code = f"Invalid type for '{param}': {message}", "invalid_type"
    else:
        text, code = f"Invalid value for '{param}': {message}", "invalid_value"
    return InvalidRequest(text, param=param, code=code)


def _first_error(errors: Any, path: tuple[Any, ...] = ()) -> tuple[tuple[Any, ...], str]:
    if isinstance(errors, dict):
        key = next(iter(errors))
        return _first_error(errors[key], path + (key,))
    if isinstance(errors, list) and errors:
        return _first_error(errors[0], path)
    return path, str(errors)


def _param_name(path: tuple[Any, ...]) -> str:
    name = ""
    for part in path:
        if part == "_schema":
            continue
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"
